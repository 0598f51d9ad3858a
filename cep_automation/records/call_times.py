"""How long this process's calls to external services typically take: a moving average of every call.

:meth:`~cep_automation.runtime.steps.StepRunner.concurrently` reads it to decide whether a job's independent
steps are worth handing to other threads. Against providers that answer in 100 ms that saves most of a job's
time; against ones that answer in a millisecond (a provider on the same network, a test's fake) the hand-offs
cost more CPU than the waits they save, and a busy worker then completes fewer jobs (2026-11-30: 0.59 of plain
Dramatiq concurrently, 0.76 one after the other, on fakes answering at once).
"""

from __future__ import annotations

WEIGHT = 0.05  # of each new call: about the last 20 calls count
_typical_s = 0.1  # before any call is measured: assume a provider across the internet


def note(seconds: float) -> None:
    """One call took ``seconds`` (``records.metrics.observe_integration`` calls this for every call)."""
    global _typical_s
    _typical_s += WEIGHT * (seconds - _typical_s)  # a lost update between threads only delays the average


def typical_s() -> float:
    return _typical_s
