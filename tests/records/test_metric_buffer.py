"""Job metrics go through a buffer: worker threads append, one thread writes; nothing is lost or counted twice."""

from __future__ import annotations

import threading

import prometheus_client as prom

from cep_automation.records import metric_buffer
from cep_automation.testing import wait_for


def fresh_metrics() -> tuple[prom.Counter, prom.Histogram]:
    registry = prom.CollectorRegistry()
    counter = prom.Counter("buffered_jobs", "test", ["queue"], registry=registry)
    histogram = prom.Histogram("buffered_seconds", "test", ["queue"], buckets=(0.1, 1.0), registry=registry)
    return counter, histogram


def test_updates_from_many_threads_are_all_applied_once():
    counter, histogram = fresh_metrics()

    def work() -> None:
        for n in range(500):
            metric_buffer.inc(counter, ("leads",))
            metric_buffer.observe(histogram, ("leads",), 0.05 if n % 2 else 0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metric_buffer.flush()
    assert counter.labels("leads")._value.get() == 4000
    samples = {(s.name, s.labels.get("le")): s.value for s in histogram.collect()[0].samples}
    assert samples[("buffered_seconds_count", None)] == 4000
    assert samples[("buffered_seconds_bucket", "0.1")] == 2000
    assert abs(samples[("buffered_seconds_sum", None)] - 1100) < 1e-6


def test_the_buffer_thread_writes_without_being_asked():
    counter, _ = fresh_metrics()
    metric_buffer.inc(counter, ("stats",), 2)
    wait_for(lambda: counter.labels("stats")._value.get() == 2, timeout=30, what="the buffer's thread to write")
