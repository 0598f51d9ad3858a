"""Metrics: the seed's names, collected across processes and served on /metrics."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from sample_actors import noop, steps_actor

from cep_automation.records import metrics
from cep_automation.testing.ports import free_port


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample line of the exposition text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_job_metrics_after_work(db, stub_broker, stub_worker):
    before = metrics.render()[0].decode()
    for _ in range(3):
        noop.send()
    steps_actor.send(item=40, fail={"crm": 1})
    stub_broker.join("testing")
    stub_worker.join()
    text = metrics.render()[0].decode()
    done = sample(text, "jobs_processed_total", queue="testing", status="completed")
    assert done - sample(before, "jobs_processed_total", queue="testing", status="completed") == 4
    assert sample(text, "job_retries_total", queue="testing", job_name="testing.steps") >= 1
    assert 'job_duration_seconds_bucket{job_name="testing.noop",le="0.1",queue="testing"}' in text
    assert "job_wait_seconds_count" in text
    assert 'queue_length{queue="leads",state="waiting"} 0.0' in text
    assert 'queue_length{queue="stats",state="dead"}' in text


def test_dead_letters_show_in_queue_length(db, stub_broker, stub_worker):
    steps_actor.send(item=41, fail={"crm": 9}, permanent=True)
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    text = metrics.render()[0].decode()
    assert sample(text, "queue_length", queue="testing", state="dead") == 1
    assert sample(text, "job_dead_letters_total", queue="testing", job_name="testing.steps") >= 1


@pytest.fixture
def metrics_port(monkeypatch):
    from cep_automation.settings import get_settings

    port = free_port()
    monkeypatch.setenv("CEP_METRICS_PORT", str(port))
    get_settings.cache_clear()
    yield port
    get_settings.cache_clear()


def test_serve_metrics_over_http(db, metrics_port):
    threading.Thread(target=metrics.serve_metrics, daemon=True).start()
    from cep_automation.testing import wait_for

    def scrape():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return None

    text = wait_for(scrape, timeout=10, what="/metrics")
    assert "queue_length" in text
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/other", timeout=2)
    assert error.value.code == 404


def test_every_known_series_exists_at_zero_before_any_job(stub_broker):
    from cep_automation.queues import POLICIES

    text = metrics.render()[0].decode()
    for policy in POLICIES:
        for name in ("job_retries_total", "job_dead_letters_total", "job_idempotent_skips_total",
                     "job_stale_ticks_total"):
            assert f'{name}{{job_name="{policy.actor}",queue="{policy.queue}"}}' in text, (name, policy.actor)
        for status in ("completed", "failed", "skipped"):
            assert f'jobs_processed_total{{queue="{policy.queue}",status="{status}"}}' in text
    assert 'job_dead_letters_total{job_name="backup.daily",queue="backup"} 0.0' in text


def test_a_postponed_attempt_is_counted_as_waiting_not_failed(db, stub_broker, stub_worker):
    import dramatiq

    from cep_automation.errors import Postponed

    tries = []

    @dramatiq.actor(actor_name="testing.waits", queue_name="testing", max_retries=0)
    def waits() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise Postponed("over a limit", retry_after=0.01)

    try:
        waits.send()
        stub_broker.join("testing", fail_fast=False)
        stub_worker.join()
        text = metrics.render()[0].decode()
        assert len(tries) == 2  # no attempt was used up: it ran again although it allows no retries
        assert sample(text, "job_postponed_total", queue="testing", job_name="testing.waits") == 1
        assert sample(text, "job_retries_total", queue="testing", job_name="testing.waits") == 0
    finally:
        stub_broker.actors.pop("testing.waits", None)
