"""Counts and times every job for Prometheus (see :mod:`cep_automation.records.metrics`), through the process's
:mod:`~cep_automation.records.metric_buffer` (a worker thread appends; one thread writes the files)."""

from __future__ import annotations

import os
import time
from typing import Any

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.errors import Postponed
from cep_automation.records import metric_buffer as buffer
from cep_automation.records import metrics


class Metrics(Middleware):
    """Records ``jobs_processed_total``, ``job_duration_seconds``, wait time, retries, dead letters and skips."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @property
    def forks(self) -> list[Any]:
        return [metrics.serve_metrics]

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        buffer.flush()
        metrics.mark_process_dead(os.getpid())

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        now = time.time()
        self._started[message.message_id] = time.monotonic()
        if not message.options.get("retries"):
            waited = max(0.0, now - message.message_timestamp / 1000)
            buffer.observe(metrics.job_metrics().wait, (message.queue_name, message.actor_name), waited)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        m, job = metrics.job_metrics(), (message.queue_name, message.actor_name)
        started = self._started.pop(message.message_id, None)
        if started is not None:
            buffer.observe(m.duration, job, time.monotonic() - started)
        if isinstance(exception, Postponed) and not message.failed:  # waiting (a limit, a confirmation): not failed
            buffer.inc(m.postponed, job)
            return
        buffer.inc(m.processed, (message.queue_name, "completed" if exception is None else "failed"))
        if exception is not None and not message.failed:
            buffer.inc(m.retries, job)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        m, job = metrics.job_metrics(), (message.queue_name, message.actor_name)
        if opt.PARKED in message.options:  # waiting for its ordering key's turn: not processed yet
            buffer.inc(m.parked, job)
            return
        buffer.inc(m.processed, (message.queue_name, "failed" if message.failed else "skipped"))
        if opt.IDEMPOTENT_SKIP in message.options:
            buffer.inc(m.skips, job)
        if opt.STALE_TICK in message.options:
            buffer.inc(m.stale_ticks, job)

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        buffer.inc(metrics.job_metrics().dead, (message.queue_name, message.actor_name))
