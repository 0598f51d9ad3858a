"""Limits declared as data, and :func:`hold`: wait for a limit's slot, or postpone the job.

A :class:`Limit` says how much of something may happen per bucket (a WhatsApp phone number, a Mailchimp
account, an ad account, a campus): a rate (``rate`` per ``period_s``, with a ``burst``), at most
``concurrency`` at once, or both. The state lives in Redis, so every worker process on every host shares it.

Over the limit, :func:`hold` waits a little (``wait_s``: a short wait is cheaper than a retry), then raises
:class:`~cep_automation.errors.Postponed` with the time until a slot frees: the job is retried then without
using up an attempt (``Retries`` treats waiting as not failing), and is never lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cep_automation.errors import Postponed
from cep_automation.flow import concurrency, throttle
from cep_automation.records import metrics

MAX_POLL_S = 0.25  # a waiting caller looks again at least this often (a slot may free early)
RECHECK_S = 1.0  # a full concurrency limit is worth a new look this soon: a lease's end is only the latest


@dataclass(frozen=True)
class Limit:
    """How much may happen per bucket. ``rate`` per ``period_s`` (``burst`` at once at most), and/or at most
    ``concurrency`` at once (each holding its slot at most ``lease_s``, should it die holding it)."""

    name: str
    rate: float | None = None
    period_s: float = 1.0
    burst: int = 1
    concurrency: int | None = None
    lease_s: float = 60.0
    wait_s: float = 1.0

    def __post_init__(self) -> None:
        if self.rate is None and self.concurrency is None:
            raise ValueError(f"limit {self.name!r} limits nothing: give it a rate, a concurrency or both")
        if self.rate is not None and (self.rate <= 0 or self.period_s <= 0 or self.burst < 1):
            raise ValueError(f"limit {self.name!r}: rate {self.rate} per {self.period_s} s with burst {self.burst}"
                             " must all be positive")
        if self.concurrency is not None and (self.concurrency < 1 or self.lease_s <= 0):
            raise ValueError(f"limit {self.name!r}: concurrency {self.concurrency} and lease {self.lease_s} s must be"
                             " positive")

    def describe(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"{self.rate:g} per {self.period_s:g} s")
        if self.concurrency is not None:
            parts.append(f"{self.concurrency} at once")
        return " and ".join(parts)


@contextmanager
def hold(limit: Limit, bucket: str, *, cost: int = 1, wait_s: float | None = None) -> Iterator[float]:
    """Run the block within ``limit`` for ``bucket``; yields how long it waited (seconds).

    Raises:
      Postponed: no slot within ``wait_s`` (default: the limit's); ``retry_after`` says when one frees.
    """
    holder = uuid.uuid4().hex
    started = time.monotonic()
    deadline = started + (limit.wait_s if wait_s is None else wait_s)
    while True:
        wait = try_once(limit, bucket, holder, cost)
        if wait is None:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise Postponed(f"{limit.name} {bucket}: over its limit ({limit.describe()}); waits {wait:.1f} s",
                            retry_after=max(wait, 0.05))
        time.sleep(min(wait, left, MAX_POLL_S))
    waited = time.monotonic() - started
    if waited > 0.001:  # it did wait; a call let through at once is not a wait
        metrics.observe_limit_wait(limit.name, "held", waited)
    try:
        yield waited
    finally:
        if limit.concurrency is not None:
            concurrency.release(limit.name, bucket, holder)


def try_once(limit: Limit, bucket: str, holder: str, cost: int = 1) -> float | None:
    """Take the limit's slots now: None, or seconds until a try could succeed (nothing is kept on failure)."""
    if limit.concurrency is not None:
        taken, wait = concurrency.try_take(limit.name, bucket, holder, most=limit.concurrency, lease_s=limit.lease_s)
        if not taken:  # a holder usually ends long before its lease does
            return min(wait, RECHECK_S)
    if limit.rate is not None:
        verdict = throttle.try_rate(limit.name, bucket, rate=limit.rate, period_s=limit.period_s, burst=limit.burst,
                                    cost=cost)
        if not verdict.admitted:
            if limit.concurrency is not None:
                concurrency.release(limit.name, bucket, holder)
            return verdict.wait_s
    return None
