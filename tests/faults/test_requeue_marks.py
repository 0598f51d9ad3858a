"""The requeue sweep marks each message it takes back from a dead worker, on the real Redis broker.

``DeliveryLimit`` counts only marked messages, so the mark is what makes a poison message end: it must land on
the stored message whatever the payload holds, count the requeues, and leave everything else as it was.
"""

from __future__ import annotations

import uuid

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from cep_automation import options as opt
from cep_automation.records.broker_state import requeue_dead_workers

# A payload that looks like the text the mark is placed by: a key named "options", the tail of a message.
TRICKY = {"options": {"x": []}, "text": '},"message_id":"x","message_timestamp":1}', "n": 12345678901234567}


@pytest.fixture
def broker(cep_services, redis_client):
    namespace = f"{cep_services.namespace}-marks-{uuid.uuid4().hex[:6]}"
    broker = RedisBroker(url=cep_services.redis_url, namespace=namespace, middleware=[], heartbeat_timeout=1000,
                         maintenance_chance=0)
    broker.declare_queue("marks")
    yield broker
    for name in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(name)
    broker.close()


@pytest.fixture
def sweeper(broker, cep_services):
    """Another process's broker on the same namespace: the one whose sweep requeues (a broker revives itself)."""
    other = RedisBroker(url=cep_services.redis_url, namespace=broker.namespace, middleware=[], heartbeat_timeout=1000,
                        maintenance_chance=0)
    other.declare_queue("marks")

    def sweep() -> dict[str, int]:
        return requeue_dead_workers(other)

    yield sweep
    other.close()


def take_and_die(broker: RedisBroker, redis_client) -> Message:
    """Fetch the queue's one message as a worker that then dies (its heartbeat goes stale)."""
    consumer = broker.consume("marks", prefetch=1, timeout=1000)
    message = next(consumer)
    assert message is not None
    redis_client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: 0})
    return message


def test_each_requeue_marks_the_message_and_keeps_its_payload(broker, sweeper, redis_client):
    sent = broker.enqueue(Message(queue_name="marks", actor_name="marks.job", args=(1, "two"), kwargs=TRICKY,
                                  options={"idempotency_key": "k"}))
    first = take_and_die(broker, redis_client)
    assert opt.REQUEUED not in first.options

    assert sweeper() == {broker.broker_id: 1}
    second = take_and_die(broker, redis_client)
    assert second.options[opt.REQUEUED] == 1

    sweeper()
    third = take_and_die(broker, redis_client)
    assert third.options[opt.REQUEUED] == 2
    assert (third.message_id, third.args, third.kwargs) == (sent.message_id, (1, "two"), TRICKY)
    assert third.options["idempotency_key"] == "k"
    raw = redis_client.hget(f"{broker.namespace}:marks.msgs", third.options["redis_message_id"])
    assert raw.count(b'"cep_requeued"') == 1


def test_a_live_worker_keeps_its_messages_unmarked(broker, sweeper, redis_client):
    broker.enqueue(Message(queue_name="marks", actor_name="marks.job", args=(), kwargs={}, options={}))
    consumer = broker.consume("marks", prefetch=1, timeout=1000)
    held = next(consumer)
    assert sweeper() == {}
    raw = redis_client.hget(f"{broker.namespace}:marks.msgs", held.options["redis_message_id"])
    assert b"cep_requeued" not in raw
