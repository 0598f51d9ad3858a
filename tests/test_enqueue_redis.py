"""The one enqueue path on the Redis broker: the claim and the enqueue are one script, exact under races."""

from __future__ import annotations

import threading
import uuid

import pytest
from dramatiq.brokers.redis import RedisBroker

from cep_automation import options as opt
from cep_automation.runtime.actor import CepActor
from cep_automation.runtime.enqueue import enqueue


@pytest.fixture
def redis_actor(cep_services, redis_client):
    """A CepActor on a real RedisBroker of its own namespace (no middleware: the enqueue path is what is tested)."""
    namespace = f"{cep_services.namespace}-enqueue-{uuid.uuid4().hex[:6]}"
    broker = RedisBroker(url=cep_services.redis_url, namespace=namespace, middleware=[])
    actor = CepActor(lambda: None, actor_name="testing.once", queue_name="once", priority=0, broker=broker,
                     options={})
    yield actor, namespace
    for name in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(name)
    broker.close()


def test_racing_identical_enqueues_queue_one_message_and_say_which_were_duplicates(redis_actor, redis_client):
    actor, namespace = redis_actor
    key = f"race-{uuid.uuid4().hex}"
    results, start = [], threading.Barrier(16)

    def send() -> None:
        start.wait()
        results.append(enqueue(actor, {}, idempotency_key=key))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exactly one was enqueued; the fifteen others were told they were duplicates of it
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.message_id for r in results}) == 1
    assert redis_client.llen(f"{namespace}:once") == 1


def test_a_delayed_enqueue_goes_to_the_delay_queue_with_its_eta(redis_actor, redis_client):
    actor, namespace = redis_actor
    sent = enqueue(actor, {}, delay=60_000, idempotency_key=f"later-{uuid.uuid4().hex}")
    assert not sent.duplicate and sent.message.options["eta"] > 0
    assert redis_client.llen(f"{namespace}:once.DQ") == 1 and redis_client.llen(f"{namespace}:once") == 0


def test_an_ordering_key_puts_each_message_in_its_line_and_parks_those_behind_the_first(cep_services, redis_client):
    from cep_automation.flow.ordering import line_key

    namespace = f"{cep_services.namespace}-order-{uuid.uuid4().hex[:6]}"
    broker = RedisBroker(url=cep_services.redis_url, namespace=namespace, middleware=[])

    def job(lead_id: str) -> None:
        pass

    actor = CepActor(job, actor_name="testing.ordered", queue_name="ordered", priority=0, broker=broker,
                     options={"ordering_key": "lead:{lead_id}"})
    try:
        first = enqueue(actor, {"lead_id": "L1"}).message
        second = enqueue(actor, {"lead_id": "L1"}).message
        other = enqueue(actor, {"lead_id": "L2"}, ordering_key="campaign:7").message  # given with the message
        line = [m.decode() for m in redis_client.lrange(line_key("lead:L1"), 0, -1)]
        assert line == [first.message_id, second.message_id]
        assert redis_client.lrange(line_key("campaign:7"), 0, -1) == [other.message_id.encode()]
        # The first of a line goes on the queue; the one behind it waits, parked, until its turn
        assert redis_client.llen(f"{namespace}:ordered") == 2
        assert redis_client.hkeys(line_key("lead:L1") + ":parked") == [second.message_id.encode()]
        # Both reach the queue only in turn, and say so: a worker runs them without looking at the line again;
        # a delayed one goes to its queue when due, whatever its turn, and takes it when fetched
        assert first.options[opt.IN_TURN] and second.options[opt.IN_TURN]
        assert opt.IN_TURN not in enqueue(actor, {"lead_id": "L1"}, delay=60_000).message.options
    finally:
        for name in redis_client.scan_iter(match=f"{namespace}:*"):
            redis_client.delete(name)
        broker.close()


def test_the_enqueue_writes_the_queued_record_in_the_same_script(redis_actor, redis_client):
    from cep_automation.db.redis_client import key
    from cep_automation.records import job_state

    actor, _ = redis_actor
    message = enqueue(actor, {}).message
    # Written by the enqueue itself, not by the background writer: readable before anything is flushed
    stored = redis_client.hgetall(key("job", message.message_id))
    assert stored[b"state"] == b"queued" and stored[b"actor"] == b"testing.once" and stored[b"queue"] == b"once"
    assert job_state.get_job(message.message_id).state == "queued"
