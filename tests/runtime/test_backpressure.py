"""Backpressure and the payload limit at the one enqueue path, on a real Redis broker."""

from __future__ import annotations

import uuid

import pytest
from dramatiq.brokers.redis import RedisBroker

from cep_automation.errors import PayloadTooLarge, QueueFull
from cep_automation.runtime import backpressure
from cep_automation.runtime.actor import CepActor
from cep_automation.runtime.enqueue import enqueue
from cep_automation.settings import get_settings


@pytest.fixture
def limited(cep_services, redis_client, monkeypatch):
    """A CepActor on queue ``busy`` of a real RedisBroker, with a soft limit of 2 and a hard limit of 4."""
    monkeypatch.setenv("CEP_QUEUE_LIMITS", "busy=2/4")
    monkeypatch.setenv("CEP_QUEUE_DEPTH_CACHE_MS", "0")
    monkeypatch.setenv("CEP_MAX_PAYLOAD_BYTES", "1024")
    get_settings.cache_clear()
    backpressure.forget()
    namespace = f"{cep_services.namespace}-bp-{uuid.uuid4().hex[:6]}"
    broker = RedisBroker(url=cep_services.redis_url, namespace=namespace, middleware=[])
    actor = CepActor(lambda **kw: None, actor_name="testing.busy", queue_name="busy", priority=0, broker=broker,
                     options={})
    yield actor, namespace
    for name in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(name)
    broker.close()
    monkeypatch.undo()
    get_settings.cache_clear()
    backpressure.forget()


def test_below_the_soft_limit_jobs_go_in_as_asked(limited, redis_client):
    actor, namespace = limited
    sent = [enqueue(actor, {}) for _ in range(2)]
    assert [s.deferred_ms for s in sent] == [0, 0] and all(s.retry_after_s is None for s in sent)
    assert redis_client.llen(f"{namespace}:busy") == 2


def test_past_the_soft_limit_a_job_is_accepted_deferred(limited, redis_client):
    # Given a queue at its soft limit
    actor, namespace = limited
    for _ in range(2):
        enqueue(actor, {})
    # When one more job comes
    sent = enqueue(actor, {})
    # Then it is accepted into the delay queue, and the caller is told to slow down
    assert sent.deferred_ms > 0 and sent.retry_after_s is not None
    assert redis_client.llen(f"{namespace}:busy.DQ") == 1


def test_at_the_hard_limit_a_job_is_refused_naming_the_queue_and_its_depth(limited, redis_client):
    actor, namespace = limited
    for _ in range(4):
        enqueue(actor, {})
    with pytest.raises(QueueFull) as raised:
        enqueue(actor, {"n": 5})
    assert raised.value.queue == "busy" and raised.value.depth == 4 and raised.value.limit == 4
    assert "queue 'busy' is full: 4 jobs waiting (hard limit 4)" in str(raised.value)
    assert redis_client.llen(f"{namespace}:busy") + redis_client.llen(f"{namespace}:busy.DQ") == 4


def test_a_cached_depth_counts_this_process_own_enqueues(limited, monkeypatch, redis_client):
    # Given a depth cache that never expires within the test
    actor, namespace = limited
    monkeypatch.setenv("CEP_QUEUE_DEPTH_CACHE_MS", str(3_600_000))
    get_settings.cache_clear()
    # When a burst comes from this process, the limit is still seen without another read
    for _ in range(4):
        enqueue(actor, {})
    with pytest.raises(QueueFull):
        enqueue(actor, {})


def test_an_oversized_payload_is_refused_before_anything_is_queued(limited, redis_client):
    actor, namespace = limited
    with pytest.raises(PayloadTooLarge) as raised:
        enqueue(actor, {"blob": "x" * 2000})
    assert raised.value.limit == 1024 and raised.value.size > 2000
    assert "CEP_MAX_PAYLOAD_BYTES" in str(raised.value)
    assert redis_client.llen(f"{namespace}:busy") == 0


def test_deferred_and_refused_enqueues_are_counted_per_queue(limited, redis_client):
    from cep_automation.records import metrics

    def count(name: str, **labels: str) -> float:
        for line in metrics.render()[0].decode().splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    actor, _ = limited
    before = [count("enqueue_deferred_total", queue="busy"),
              count("enqueue_rejected_total", queue="busy", reason="queue_full"),
              count("enqueue_rejected_total", queue="busy", reason="too_large")]
    # Given a queue with a soft limit of 2 and a hard limit of 4: two go in, two are deferred, one is refused
    for _ in range(4):
        enqueue(actor, {})
    with pytest.raises(QueueFull):
        enqueue(actor, {})
    with pytest.raises(PayloadTooLarge):
        enqueue(actor, {"blob": "x" * 2000})
    # Then /metrics counts each
    after = [count("enqueue_deferred_total", queue="busy"),
             count("enqueue_rejected_total", queue="busy", reason="queue_full"),
             count("enqueue_rejected_total", queue="busy", reason="too_large")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]


def test_malformed_queue_limits_stop_start_up_naming_the_entry(settings_for):
    from cep_automation.errors import SettingsError

    with pytest.raises(SettingsError, match="CEP_QUEUE_LIMITS is invalid.*'leads=9/3'"):
        settings_for(cep_queue_limits="leads=9/3")
    with pytest.raises(SettingsError, match="not QUEUE=SOFT/HARD"):
        settings_for(cep_queue_limits="leads=lots")
