"""Idempotency keys: enqueue once per window, run once, crashed holders expire, failures release."""

from __future__ import annotations

import time

from sample_actors import noop, steps_actor

from cep_automation.db.redis_client import key
from cep_automation.records import idempotency
from cep_automation.runtime.enqueue import idempotency_key


def test_explicit_key_dedupes_enqueue_and_returns_the_first_id(stub_broker):
    first = noop.send_with_options(idempotency_key="nightly-2026-11-25")
    second = noop.send_with_options(idempotency_key="nightly-2026-11-25")
    other = noop.send_with_options(idempotency_key="nightly-2026-11-26")
    assert second.message_id == first.message_id != other.message_id
    assert stub_broker.queues["testing"].qsize() == 2


def test_actor_template_derives_the_key(stub_broker):
    assert idempotency_key(steps_actor, {"item": 7}, {}) == "testing.steps:7"
    assert steps_actor.send(item=7).message_id == steps_actor.send(item=7).message_id


def test_rejected_enqueue_releases_its_claim(stub_broker):
    try:
        steps_actor.send_with_options(kwargs={"item": 8, "fail": "bad"})
    except Exception:
        pass
    assert stub_broker.queues["testing"].qsize() == 0
    steps_actor.send(item=8)  # the key was given back, so a good send goes through
    assert stub_broker.queues["testing"].qsize() == 1


def test_run_states(redis_client):
    assert idempotency.acquire_run("k", "m1", ttl_s=30) is None
    # Another message with the key while m1 runs is blocked; m1 itself (a redelivery) may take over.
    assert idempotency.acquire_run("k", "m2", ttl_s=30)["status"] == "pending"
    assert idempotency.acquire_run("k", "m1", ttl_s=30) is None
    # A failure releases the key for the retry
    idempotency.finish_run("k", "m1", succeeded=False)
    assert idempotency.acquire_run("k", "m2", ttl_s=30) is None
    idempotency.finish_run("k", "m2", succeeded=True)
    assert idempotency.acquire_run("k", "m3", ttl_s=30)["status"] == "completed"


def test_crashed_holder_expires_after_the_time_limit(redis_client):
    assert idempotency.acquire_run("crash", "m1", ttl_s=1) is None
    assert idempotency.acquire_run("crash", "m2", ttl_s=1) is not None
    time.sleep(1.2)
    assert idempotency.acquire_run("crash", "m2", ttl_s=1) is None


def test_completed_key_is_kept_for_the_window(db, stub_broker, stub_worker, redis_client):
    message = steps_actor.send(item=9)
    stub_broker.join("testing")
    stub_worker.join()
    state = idempotency.run_state("testing.steps:9")
    assert state["status"] == "completed" and state["message_id"] == message.message_id
    assert 0 < redis_client.ttl(key("idem", "run", "testing.steps:9")) <= idempotency.WINDOW_S
