"""DeliveryLimit on the StubBroker: deliveries that never finished add up, normal attempts reset the count.

A worker process that dies cannot be simulated on the StubBroker, so these tests mark the message the way the
requeue sweep marks a dead worker's messages and set the count its crashed deliveries would have left in Redis;
``test_poison_message.py`` kills real worker processes, and ``test_requeue_marks.py`` checks the sweep's mark.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import dramatiq
import pytest
import redis
from dramatiq.middleware import CurrentMessage

import cep_automation.middleware
from cep_automation import options as opt
from cep_automation.errors import TransientError
from cep_automation.middleware import DeliveryLimit, Idempotency
from cep_automation.middleware.delivery_limit import (
    DEFAULT_MAX_DELIVERIES,
    ERROR_TYPE,
    deliveries_key,
)
from cep_automation.records import delivery as delivery_record
from cep_automation.records import job_state


@pytest.fixture
def limited(stub_broker, redis_client):
    """The stub broker with DeliveryLimit where the stack wants it (unless the stack has it), and test actors."""
    added = None
    if not any(isinstance(m, DeliveryLimit) for m in stub_broker.middleware):
        added = DeliveryLimit()
        stub_broker.add_middleware(added, before=Idempotency)
    calls, failures = [], []

    @dramatiq.actor(actor_name="faults.count", queue_name="faults", max_retries=0)
    def count(n: int = 0) -> None:
        calls.append(n)

    @dramatiq.actor(actor_name="faults.fragile", queue_name="faults", max_retries=0, max_deliveries=1)
    def fragile() -> None:
        calls.append("fragile")

    @dramatiq.actor(actor_name="faults.flaky", queue_name="faults", max_retries=5, min_backoff=1, max_backoff=5,
                    max_deliveries=2)
    def flaky() -> None:
        """May be delivered twice without finishing; fails four times before it succeeds."""
        calls.append(CurrentMessage.get_current_message().options.get(opt.REQUEUED))
        if len(failures) < 4:
            failures.append(1)
            raise TransientError("not yet", retry_after=0.001)

    try:
        yield SimpleNamespace(count=count, fragile=fragile, flaky=flaky, calls=calls, failures=failures)
    finally:
        for name in ("faults.count", "faults.fragile", "faults.flaky"):
            stub_broker.actors.pop(name, None)
        if added is not None:
            stub_broker.middleware.remove(added)


class RedisDown:
    """A Redis client whose server is gone."""

    def pipeline(self, *args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    delete = register_script = pipeline


def crashed_before(actor, times, redis_client, **kwargs):
    """A message of ``actor`` whose last ``times`` deliveries died with their worker, as the sweep requeued it.

    The first delivery was not counted (the message was not marked yet); the count holds the others.
    """
    message = actor.message(**kwargs)
    if times:
        message.options[opt.REQUEUED] = times
        if times > 1:
            redis_client.set(deliveries_key(message.message_id), times - 1)
    return message


def run(stub_broker, stub_worker, message):
    stub_broker.enqueue(message)
    stub_broker.join("faults", fail_fast=False)
    stub_worker.join()


def test_past_the_limit_the_message_is_dead_lettered_unrun(limited, stub_broker, stub_worker, redis_client, db,
                                                           flush_audit):
    count, calls = limited.count, limited.calls
    # Given a message whose last five deliveries killed their worker
    message = crashed_before(count, DEFAULT_MAX_DELIVERIES, redis_client, n=7)
    # When it is delivered a sixth time
    run(stub_broker, stub_worker, message)
    # Then it did not run, and it is in the dead letters as a poison message with its deliveries
    assert calls == []
    letter = db.execute("SELECT * FROM dead_letters WHERE message_id = %s", (message.message_id,)).fetchone()
    assert (letter["error_type"], letter["attempts"]) == (ERROR_TYPE, DEFAULT_MAX_DELIVERIES + 1)
    assert letter["payload"] == {"args": [], "kwargs": {"n": 7}}
    assert f"not run again after {DEFAULT_MAX_DELIVERIES} deliveries" in letter["error_message"]
    # And the job state and the audit log say so; the count is gone
    assert job_state.get_job(message.message_id).state == "dead"
    flush_audit()
    audit = db.execute("SELECT status, metadata FROM audit_log WHERE message_id = %s", (message.message_id,)).fetchone()
    assert audit["status"] == "dead" and "died each time" in audit["metadata"]["error"]
    assert redis_client.get(deliveries_key(message.message_id)) is None


def test_up_to_the_limit_it_runs_and_a_finished_attempt_resets_the_count(limited, stub_broker, stub_worker,
                                                                          redis_client, db):
    count, calls = limited.count, limited.calls
    message = crashed_before(count, DEFAULT_MAX_DELIVERIES - 1, redis_client, n=1)
    run(stub_broker, stub_worker, message)
    assert calls == [1]
    assert redis_client.get(deliveries_key(message.message_id)) is None
    assert db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 0


def test_the_actor_option_sets_its_own_limit(limited, stub_broker, stub_worker, redis_client, db):
    message = crashed_before(limited.fragile, 1, redis_client)
    run(stub_broker, stub_worker, message)
    assert limited.calls == []
    letter = db.execute("SELECT error_type, attempts FROM dead_letters").fetchone()
    assert (letter["error_type"], letter["attempts"]) == (ERROR_TYPE, 2)


def test_failed_attempts_that_are_retried_do_not_add_up(limited, stub_broker, stub_worker, redis_client, db):
    # Given an actor that may be delivered twice without finishing, which fails four times before it succeeds,
    # and a message of it that a dead worker held once
    message = crashed_before(limited.flaky, 1, redis_client)
    # When it runs: five deliveries of the same message id, each attempt ending normally
    run(stub_broker, stub_worker, message)
    # Then it completed: only deliveries that never finished count, and the retries went out unmarked
    assert len(limited.failures) == 4 and job_state.get_job(message.message_id).state == "completed"
    assert limited.calls == [1, None, None, None, None]
    assert redis_client.get(deliveries_key(message.message_id)) is None
    assert db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 0


def test_a_message_no_dead_worker_held_is_not_counted(limited, stub_broker, stub_worker, redis_client):
    # Given a count left over under a message's id, but a message that was never requeued
    message = limited.fragile.message()
    redis_client.set(deliveries_key(message.message_id), 5)
    # When it is delivered
    run(stub_broker, stub_worker, message)
    # Then it ran: only a message the requeue sweep marked is counted
    assert limited.calls == ["fragile"]


def test_without_redis_it_cannot_count_and_lets_the_message_run(limited, stub_broker, stub_worker, monkeypatch,
                                                                caplog, redis_client):
    count, calls = limited.count, limited.calls
    monkeypatch.setattr(delivery_record, "get_redis", lambda: RedisDown())
    with caplog.at_level(logging.WARNING, logger="cep_automation.middleware.DeliveryLimit"):
        run(stub_broker, stub_worker, crashed_before(count, 2, redis_client, n=2))
    assert calls == [2]
    assert "not counted (Redis unavailable" in caplog.text


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="max_deliveries must be at least 1"):
        DeliveryLimit(max_deliveries=0)


def test_delivery_limit_is_exported():
    assert "DeliveryLimit" in cep_automation.middleware.__all__
    assert cep_automation.middleware.DeliveryLimit is DeliveryLimit
