"""Counts and times every job for Prometheus (see :mod:`cep_automation.records.metrics`)."""

from __future__ import annotations

import os
import time
from typing import Any

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.errors import Postponed
from cep_automation.records import metrics


class Metrics(Middleware):
    """Records ``jobs_processed_total``, ``job_duration_seconds``, wait time, retries, dead letters and skips."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @property
    def forks(self) -> list[Any]:
        return [metrics.serve_metrics]

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        metrics.mark_process_dead(os.getpid())

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        now = time.time()
        self._started[message.message_id] = time.monotonic()
        if not message.options.get("retries"):
            waited = max(0.0, now - message.message_timestamp / 1000)
            metrics.job_metrics().wait.labels(message.queue_name, message.actor_name).observe(waited)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        m = metrics.job_metrics()
        started = self._started.pop(message.message_id, None)
        if started is not None:
            m.duration.labels(message.queue_name, message.actor_name).observe(time.monotonic() - started)
        if isinstance(exception, Postponed) and not message.failed:  # waiting (a limit, a confirmation): not failed
            m.postponed.labels(message.queue_name, message.actor_name).inc()
            return
        m.processed.labels(message.queue_name, "completed" if exception is None else "failed").inc()
        if exception is not None and not message.failed:
            m.retries.labels(message.queue_name, message.actor_name).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        if opt.PARKED in message.options:  # waiting for its ordering key's turn: not processed yet
            metrics.job_metrics().parked.labels(message.queue_name, message.actor_name).inc()
            return
        m = metrics.job_metrics()
        m.processed.labels(message.queue_name, "failed" if message.failed else "skipped").inc()
        if opt.IDEMPOTENT_SKIP in message.options:
            m.skips.labels(message.queue_name, message.actor_name).inc()
        if opt.STALE_TICK in message.options:
            m.stale_ticks.labels(message.queue_name, message.actor_name).inc()

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        metrics.job_metrics().dead.labels(message.queue_name, message.actor_name).inc()
