"""Retry delay curves, declared per job in the policy table (:mod:`cep_automation.queues`).

Dramatiq's own backoff draws each delay at random between half and all of ``min_backoff * 2**n``, so the
"2 s, 4 s, 8 s" of our table came out as two retries between 2 and 4 s. Here the curve is what the table
says, with bounded jitter (±10% by default) so that a burst of failures does not retry in lockstep:

* ``exponential(base)``: base, 2·base, 4·base, … (the default, 2 s for every job);
* ``linear(base)``: base, 2·base, 3·base, …;
* ``fixed(base)``: base every time;
* ``steps(a, b, c)``: a, then b, then c for every later retry — e.g. :data:`RATE_LIMITED`, the seed's curve
  for rate-limited APIs (5 s, 15 s, 60 s).

Every curve is capped (``cap_ms``, 5 minutes by default). A provider's ``Retry-After`` replaces the curve for
that retry (see :mod:`cep_automation.middleware.retries`, which also caps it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("exponential", "linear", "fixed", "steps")
DEFAULT_CAP_MS = 5 * 60_000


@dataclass(frozen=True)
class Backoff:
    """A delay curve: :meth:`delay_ms` of the n-th retry (n = 1 for the first).

    Parameters:
      kind: one of :data:`KINDS`.
      base_ms: the first delay (for ``steps``, the first step).
      cap_ms: no delay exceeds it.
      steps_ms: the delays of a ``steps`` curve, the last one repeated.
      jitter: the share by which a delay may vary either way (0 to 0.5).
    """

    kind: str
    base_ms: int
    cap_ms: int = DEFAULT_CAP_MS
    steps_ms: tuple[int, ...] = field(default=())
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"backoff kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.base_ms <= 0 or self.cap_ms < self.base_ms:
            raise ValueError(f"backoff needs 0 < base_ms <= cap_ms, got {self.base_ms} and {self.cap_ms}")
        if not 0 <= self.jitter <= 0.5:
            raise ValueError(f"backoff jitter must be between 0 and 0.5, got {self.jitter}")
        if self.kind == "steps" and not self.steps_ms:
            raise ValueError("a steps backoff needs at least one step")

    def nominal_ms(self, retry: int) -> int:
        """The delay before the ``retry``-th retry, without jitter."""
        if retry < 1:
            raise ValueError(f"retries are counted from 1, got {retry}")
        delay: int
        if self.kind == "exponential":
            factor: int = 2 ** min(retry - 1, 32)  # int ** int is typed Any (a negative power is a float)
            delay = self.base_ms * factor
        elif self.kind == "linear":
            delay = self.base_ms * retry
        elif self.kind == "fixed":
            delay = self.base_ms
        else:
            delay = self.steps_ms[min(retry, len(self.steps_ms)) - 1]
        return min(delay, self.cap_ms)

    def delay_ms(self, retry: int, rng: random.Random | None = None) -> int:
        """The delay before the ``retry``-th retry, jittered within ±``jitter``."""
        nominal = self.nominal_ms(retry)
        spread = nominal * self.jitter
        return max(0, round(nominal + (rng or random).uniform(-spread, spread)))

    def describe(self, retries: int) -> str:
        """The nominal delays of ``retries`` retries, e.g. ``"2 s, 4 s"``."""
        return ", ".join(_seconds(self.nominal_ms(n)) for n in range(1, retries + 1)) or "no retries"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s" if ms < 120_000 else f"{ms / 60_000:g} min"


def exponential(base_ms: int, cap_ms: int = DEFAULT_CAP_MS) -> Backoff:
    return Backoff("exponential", base_ms, cap_ms)


def linear(base_ms: int, cap_ms: int = DEFAULT_CAP_MS) -> Backoff:
    return Backoff("linear", base_ms, cap_ms)


def fixed(delay_ms: int) -> Backoff:
    return Backoff("fixed", delay_ms, delay_ms)


def steps(*delays_ms: int) -> Backoff:
    if not delays_ms:
        raise ValueError("a steps backoff needs at least one step")
    return Backoff("steps", delays_ms[0], max(delays_ms), steps_ms=tuple(delays_ms))


RATE_LIMITED = steps(5_000, 15_000, 60_000)
