"""When a job should run: ``run_at``, ``delay`` and ``debounce`` checked once for every front-end.

Python passes a timezone-aware ``datetime`` and a delay in milliseconds (as Dramatiq does) or a
``timedelta``; the CLI and the HTTP ingress pass ISO 8601 text and seconds, parsed here, so a bad
value gets the same sentence wherever it came from.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from cep_automation.errors import ScheduleError

MAX_HORIZON = dt.timedelta(days=5 * 366)  # further than this is a typo (a year 2062), not a plan
MAX_DEBOUNCE = dt.timedelta(days=1)


@dataclass(frozen=True)
class When:
    """A job's time: due at ``run_at``, ``delay_ms`` from now (None: now); ``debounce`` makes it a quiet period."""

    run_at: dt.datetime | None = None
    delay_ms: int | None = None
    debounce: bool = False


NOW = When()


MAX_PRIORITY = 100


def priority(value: object, name: str = "priority") -> int:
    """A job's priority: a whole number from 0 (most urgent) to :data:`MAX_PRIORITY`; each level lets it wait
    10 s longer behind fresher work (:mod:`cep_automation.flow.priority`)."""
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not 0 <= number <= MAX_PRIORITY:
        raise ScheduleError(f"{name} {value!r} is not a whole number from 0 (most urgent) to {MAX_PRIORITY}")
    return number


def turn_keys(ordering: str | None, fairness: str | None, names: tuple[str, str] = ("ordering_key", "fairness_key"),
              ) -> dict[str, str]:
    """The enqueue keywords of an ordering key (its jobs run one at a time, in order) or a fairness key (its jobs
    take turns with other keys'), given with a job from the CLI or over HTTP: 1 to 200 printable characters
    without spaces, and not both (an ordering key already runs its jobs one at a time)."""
    given: dict[str, str] = {}
    for keyword, name, value in (("ordering_key", names[0], ordering), ("fairness_key", names[1], fairness)):
        if value is None:
            continue
        if not 1 <= len(value) <= 200 or not value.isprintable() or any(c.isspace() for c in value):
            raise ScheduleError(f"{name} {value[:60]!r} must be 1 to 200 printable characters without spaces")
        given[keyword] = value
    if len(given) == 2:
        raise ScheduleError(f"give {names[0]} or {names[1]}, not both: an ordering key already runs its jobs"
                            " one at a time")
    return given


def parse_instant(text: str, name: str = "run_at") -> dt.datetime:
    """An ISO 8601 instant with its offset (``2026-12-07T09:00:00+01:00``, ``…Z``); naive text is refused."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(f"{name} {text!r} is not an ISO 8601 date and time, e.g. 2026-12-07T09:00:00+01:00"
                            " or 2026-12-07T08:00:00Z") from None
    return aware(value, name)


def parse_seconds(text: str, name: str) -> float:
    """A number of seconds (``90``, ``0.5``), zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise ScheduleError(f"{name} {text!r} is not a number of seconds") from None
    return seconds(value, name)


def seconds(value: float, name: str) -> float:
    """``value`` checked as a number of seconds: zero or more, and within :data:`MAX_HORIZON`."""
    if not math.isfinite(value) or value < 0:
        raise ScheduleError(f"{name} must be zero or more seconds, got {value}")
    if value > MAX_HORIZON.total_seconds():
        raise ScheduleError(f"{name} of {value:g} s is more than {MAX_HORIZON.days} days ahead")
    return value


def aware(value: dt.datetime, name: str = "run_at") -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ScheduleError(f"{name} must be a datetime with a time zone, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{name} {value.isoformat()} has no time zone; give an offset (+01:00, Z) or tzinfo,"
                            " e.g. datetime(2026, 12, 7, 9, tzinfo=ZoneInfo('Europe/Madrid'))")
    return value


def resolve(run_at: dt.datetime | None, delay: int | dt.timedelta | None, debounce: float | None,
            now: dt.datetime | None = None) -> When:
    """Check the three and say when the job is due; raises :class:`ScheduleError` naming the bad one."""
    if run_at is None and delay is None and debounce is None:
        return NOW  # the hot path: most jobs are for now
    given = [name for name, value in (("run_at", run_at), ("delay", delay), ("debounce", debounce))
             if value is not None]
    if len(given) > 1:
        raise ScheduleError(f"give one of run_at, delay and debounce, not {' and '.join(given)}")
    now = now or dt.datetime.now(dt.UTC)
    if debounce is not None:
        period = dt.timedelta(seconds=seconds(debounce, "debounce"))
        if period > MAX_DEBOUNCE or period <= dt.timedelta(0):
            raise ScheduleError(f"debounce must be more than 0 s and at most {MAX_DEBOUNCE}, got {debounce} s")
        return When(run_at=now + period, delay_ms=int(period.total_seconds() * 1000), debounce=True)
    if delay is not None:
        delay_s = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay / 1000
        seconds(delay_s, "delay")
        run_at = now + dt.timedelta(seconds=delay_s)
    elif run_at is None:
        return NOW
    run_at = aware(run_at)
    if run_at - now > MAX_HORIZON:
        raise ScheduleError(f"run_at {run_at.isoformat()} is more than {MAX_HORIZON.days} days ahead")
    delay_ms = max(0, int((run_at - now).total_seconds() * 1000))
    return When(run_at=run_at, delay_ms=delay_ms or None)
