"""What RabbitMQ holds, read through ``records/broker_state.py``: queue depths for ``queue_length``, the alert
measures and backpressure, in queues named under the namespace; on the local RabbitMQ, no worker."""

from __future__ import annotations

import pytest
from dramatiq import Message

from cep_automation.errors import QueueFull
from cep_automation.ops.thresholds import Threshold
from cep_automation.records import broker_state, metrics
from cep_automation.runtime import backpressure
from cep_automation.runtime.actor import CepActor
from cep_automation.runtime.alert_measures import Measures
from cep_automation.runtime.enqueue import enqueue
from cep_automation.settings import get_settings

pytestmark = pytest.mark.rabbitmq


def send(broker, queue, count, delay=None):
    for n in range(count):
        broker.enqueue(Message(queue_name=queue, actor_name="stats.rollup", args=(), kwargs={"n": n}, options={}),
                       delay=delay)


def test_waiting_and_delayed_counts_are_read_from_the_namespaced_queues(rabbitmq, db):
    # Given three leads waiting, two delayed by a minute and one stats job, sent to RabbitMQ in this namespace,
    # and one dead letter of the leads queue in PostgreSQL
    producer = rabbitmq.broker()
    send(producer, "leads", 3)
    send(producer, "leads", 2, delay=60_000)
    send(producer, "stats", 1)
    db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload) VALUES ('leads', 'lead.created',"
               " 'm-dead', '{}')")
    # Then the queues on the server carry the namespace
    assert rabbitmq.exists(f"{rabbitmq.namespace}.leads") and rabbitmq.exists(f"{rabbitmq.namespace}.leads.DQ")
    # And the broker's counts, queue_length and the alert measure read them there
    counts = broker_state.waiting_and_delayed()
    assert counts[("leads", "waiting")] == 3 and counts[("leads", "delayed")] == 2
    assert counts[("stats", "waiting")] == 1 and counts[("llm", "waiting")] == counts[("backup", "delayed")] == 0
    lengths = metrics.queue_lengths()
    assert (lengths[("leads", "waiting")], lengths[("leads", "delayed")], lengths[("leads", "dead")]) == (3, 2, 1)
    assert 'queue_length{queue="leads",state="waiting"} 3.0' in metrics.render()[0].decode()
    (reading,) = Measures().read(Threshold("QueueDepthHigh", "queue_depth", 2, "warning", queue="leads"))
    assert reading.value == 3 and reading.firing
    # And what RabbitMQ does not tell without its management plugin reads as nothing, not as an error
    assert broker_state.held_counts(["any-worker"]) == {}
    assert broker_state.oldest_waiting_s(["leads"]) == {"leads": 0.0}


@pytest.fixture
def limited_llm(rabbitmq, redis_client, monkeypatch):
    """A CepActor on the ``llm`` queue of a RabbitMQ broker, with a soft limit of 2 and a hard limit of 4."""
    monkeypatch.setenv("CEP_QUEUE_LIMITS", "llm=2/4")
    monkeypatch.setenv("CEP_QUEUE_DEPTH_CACHE_MS", "0")
    get_settings.cache_clear()
    backpressure.forget()
    actor = CepActor(lambda **kw: None, actor_name="testing.busy", queue_name="llm", priority=0,
                     broker=rabbitmq.broker(), options={})
    yield actor
    monkeypatch.undo()
    get_settings.cache_clear()
    backpressure.forget()


def test_backpressure_counts_rabbitmq_queues(limited_llm):
    # Given two jobs waiting (the soft limit), then two more accepted but deferred into the delay queue
    sent = [enqueue(limited_llm, {}) for _ in range(4)]
    assert [s.deferred_ms > 0 for s in sent] == [False, False, True, True]
    # When one more comes, the queue's depth on RabbitMQ (waiting + delayed) is at the hard limit
    with pytest.raises(QueueFull) as raised:
        enqueue(limited_llm, {"n": 5})
    assert raised.value.queue == "llm" and raised.value.depth == 4
    assert broker_state.waiting_and_delayed()[("llm", "waiting")] == 2
