"""Running a job's steps: each once (through the effects ledger), each outcome recorded, none stopping the rest.

After all steps, :meth:`StepRunner.finish` raises if any failed: a :class:`TransientError` when
a retry could help (only the failed steps run again: the ledger remembers the others), a
:class:`PermanentError` when every failure is permanent (straight to the dead letters).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cep_automation import backlog, telemetry
from cep_automation.errors import PermanentError, Postponed, TransientError
from cep_automation.log_output import step_context
from cep_automation.records.effects import Effect, Ledger, Write
from cep_automation.redact import redact
from cep_automation.runtime.fan_out import FanOut
from cep_automation.runtime.job import JobHandle

logger = logging.getLogger("cep_automation.runtime.steps.StepRunner")
MAX_CONCURRENT_STEPS = 6
POOL_THREADS = 32  # shared by every job of the process; a step waits for a thread when all are busy

_pool_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_fan_out: FanOut | None = None


def _pool() -> tuple[ThreadPoolExecutor, FanOut]:
    """The process's step threads and their limit, made on first use (after a worker process forks, not before)."""
    global _executor, _fan_out
    with _pool_lock:
        if _executor is None or _fan_out is None:
            _executor = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="cep-step")
            _fan_out = FanOut(POOL_THREADS, backlog=backlog.waiting)
        return _executor, _fan_out


class StepRunner:
    """The steps of one job; ``outcomes`` maps step → ``{"status", "detail"?}``."""

    def __init__(self, ledger: Ledger, job: JobHandle) -> None:
        self.ledger = ledger
        self.job = job
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, Exception] = {}
        self._writes: dict[str, Write] = {}
        self._lock = threading.Lock()

    def skip(self, step: str, reason: str) -> None:
        self._record(step, "skipped", reason)

    def run(self, step: str, action: Callable[[], Any]) -> Effect | None:
        """Run ``action`` unless it already succeeded for this job; a failure is recorded, not raised."""
        return self._attempt(step, lambda: self.ledger.run(step, action))

    def run_at_most_once(self, step: str, action: Callable[[], Any]) -> Effect | None:
        """Like :meth:`run`, never repeating a send an earlier attempt may have made (``Ledger.run_at_most_once``)."""
        return self._attempt(step, lambda: self.ledger.run_at_most_once(step, action))

    def run_confirmable(self, step: str, send: Callable[[str], str], confirm: Callable[[str], str | None], *,
                        grace_s: float) -> Effect | None:
        """Like :meth:`run`, for a send the provider confirms by our reference (see ``Ledger.run_confirmable``)."""
        return self._attempt(step, lambda: self.ledger.run_confirmable(step, send, confirm, grace_s=grace_s))

    def run_in_redis(self, step: str, write: Callable[[Any], Any]) -> Effect | None:
        """Like :meth:`run`, for a step whose effect is a write to Redis: it and its record go in one round trip
        (``Ledger.run_in_redis``)."""
        return self._attempt(step, lambda: self.ledger.run_in_redis(step, write))

    def with_flush(self, step: str, write: Write) -> None:
        """A step whose effect is a write to PostgreSQL: it runs in :meth:`finish`, in the transaction that stores
        every step's record (``Ledger.flush``), so it and its record commit together, at no extra transaction."""
        self._writes[step] = write

    def _attempt(self, step: str, through_ledger: Callable[[], Effect]) -> Effect | None:
        try:
            with step_context(step, self.job.message_id), (  # log lines of the step carry its name
                    telemetry.span(f"step {step}", **{"cep.step": step}) if telemetry.ACTIVE else telemetry.NO_SPAN):
                effect = through_ledger()
        except Exception as exc:  # any failure of one step must not stop the others
            self._failed(step, exc)
            return None
        self._record(step, "success", describe(effect))
        return effect

    def _failed(self, step: str, exc: Exception) -> None:
        with self._lock:
            self.failures[step] = exc
        self._record(step, "failed", f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, (TransientError, PermanentError)):
            logger.error("Step %s failed unexpectedly", step, exc_info=exc)

    def _record(self, step: str, status: str, detail: str | None) -> None:
        detail = redact(detail) if detail else None
        with self._lock:
            self.outcomes[step] = {"status": status, **({"detail": detail} if detail else {})}
        self.job.step(step, status, detail)

    def concurrently(self, calls: list[Callable[[], object]], *, at_most: int = MAX_CONCURRENT_STEPS) -> None:
        """Run independent step calls (each records its own step) at once, at most ``at_most`` at a time: a job
        then takes about as long as its slowest call, not the sum of them. While the process's CPU is busy with
        other jobs, fewer go to step threads (:mod:`cep_automation.runtime.fan_out`): this thread runs the rest."""
        if len(calls) <= 1 or at_most <= 1:
            for call in calls:
                call()
            return
        executor, fan_out = _pool()
        for start in range(0, len(calls), at_most):
            batch = calls[start:start + at_most]
            granted = fan_out.grant(len(batch) - 1)  # this thread would only wait: it runs one call itself
            try:
                handed = batch[:granted]
                if telemetry.ACTIVE:  # a step thread's spans are children of this job's span
                    handed = [_in_context(call) for call in handed]
                futures = [executor.submit(call) for call in handed]
                with self.ledger.batched():  # one after another here: each record rides with the next write
                    for call in batch[granted:]:
                        call()
                    if futures:  # in an outer batch, the records would wait for the step threads: not that long
                        self.ledger.send_waiting()
                for future in futures:
                    future.result()  # a step records its own failure; an error here is a bug, and surfaces
            finally:
                fan_out.release(granted)

    def finish(self) -> dict[str, dict[str, Any]]:
        """The outcomes, or the error that makes the job retry or die (the ledger's new effects are stored first,
        with the steps of :meth:`with_flush`)."""
        for step, outcome in self.ledger.flush(self._writes).items():
            if isinstance(outcome, Exception):
                self._failed(step, outcome)
            else:
                self._record(step, "success", describe(outcome))
        if not self.failures:
            return self.outcomes
        summary = "; ".join(f"{step}: {self.outcomes[step].get('detail', '')}" for step in self.failures)
        message = f"{len(self.failures)} step(s) failed: {summary}"
        if all(isinstance(exc, PermanentError) for exc in self.failures.values()):
            raise PermanentError(message)
        delays = [exc.retry_after for exc in self.failures.values()
                  if isinstance(exc, TransientError) and exc.retry_after is not None]
        retry_after = max(delays) if delays else None
        if all(isinstance(exc, Postponed) for exc in self.failures.values()):
            raise Postponed(message, retry_after=retry_after)  # only waiting: no attempt is used up
        raise TransientError(message, retry_after=retry_after)


def _in_context(call: Callable[[], object]) -> Callable[[], object]:
    context = contextvars.copy_context()
    return lambda: context.run(call)


def describe(effect: Effect) -> str | None:
    """What the step outcome says beyond "success"."""
    if effect.unconfirmed:
        return "may have been sent (no answer from the provider); not repeated"
    return "done in an earlier attempt" if effect.replayed else None
