"""The queue policy table: one row per job, declared once as data.

Actors take their Dramatiq options from here (see :func:`actor_options`), so the attempts,
backoff and time limits of docs/architecture.md live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from cep_automation.backoff import Backoff, exponential

EXPONENTIAL_2S = exponential(2_000)  # 2 s, 4 s, 8 s … (±10%)

# Dramatiq runs lower priority numbers first among messages a worker has fetched.
PRIORITY_HIGH, PRIORITY_MEDIUM, PRIORITY_LOW = 0, 5, 10


@dataclass(frozen=True)
class QueuePolicy:
    """How one job is queued and retried.

    Parameters:
      actor: the job (actor) name, e.g. ``lead.created``.
      queue: the Redis queue it is sent to.
      priority: one of the ``PRIORITY_*`` values.
      attempts: total tries, the first one included.
      backoff: the retry delay curve (:mod:`cep_automation.backoff`).
      time_limit_s: how long one attempt may run.
      cron: UTC cron schedule for periodiq, or None.
      pool: the worker pool that consumes the queue.
    """

    actor: str
    queue: str
    priority: int
    attempts: int
    backoff: Backoff
    time_limit_s: int
    cron: str | None
    pool: str

    @property
    def max_retries(self) -> int:
        return self.attempts - 1

    @property
    def backoff_ms(self) -> int:
        """The first retry's delay."""
        return self.backoff.nominal_ms(1)

    @property
    def max_backoff_ms(self) -> int:
        """The last retry's delay (Dramatiq's ``max_backoff``, for plain Dramatiq tools that read it)."""
        return self.backoff.nominal_ms(max(self.max_retries, 1))


POLICIES: tuple[QueuePolicy, ...] = (
    QueuePolicy("lead.created", "leads", PRIORITY_HIGH, 3, EXPONENTIAL_2S, 60, None, "automation"),
    QueuePolicy("campaign.sync", "campaigns", PRIORITY_MEDIUM, 3, EXPONENTIAL_2S, 600, "0 */6 * * *", "automation"),
    QueuePolicy("stats.rollup", "stats", PRIORITY_LOW, 3, EXPONENTIAL_2S, 600, "0 2 * * *", "automation"),
    # 08:00 in Madrid is 07:00 UTC in winter and 06:00 in summer: both tick, the job acts on the one that is 08:00.
    QueuePolicy("digest.daily", "stats", PRIORITY_LOW, 3, EXPONENTIAL_2S, 600, "0 6,7 * * *", "automation"),
    QueuePolicy("backup.daily", "backup", PRIORITY_LOW, 2, EXPONENTIAL_2S, 3_600, "0 3 * * *", "backup"),
    QueuePolicy("llm.ingest", "llm", PRIORITY_MEDIUM, 3, EXPONENTIAL_2S, 120, None, "llm"),
    QueuePolicy("meta.leadgen", "leads", PRIORITY_HIGH, 3, EXPONENTIAL_2S, 60, None, "automation"),
    QueuePolicy("gdpr.erase", "leads", PRIORITY_MEDIUM, 5, EXPONENTIAL_2S, 600, None, "automation"),
    QueuePolicy("consent.sync", "leads", PRIORITY_HIGH, 5, EXPONENTIAL_2S, 60, None, "automation"),
    QueuePolicy("sequence.step", "leads", PRIORITY_MEDIUM, 5, EXPONENTIAL_2S, 60, None, "automation"),
    QueuePolicy("data.retention", "stats", PRIORITY_LOW, 3, EXPONENTIAL_2S, 1_800, "30 4 * * *", "automation"),
    QueuePolicy("alerts.check", "stats", PRIORITY_HIGH, 1, EXPONENTIAL_2S, 60, "* * * * *", "automation"),
    QueuePolicy("history.snapshot", "stats", PRIORITY_HIGH, 1, EXPONENTIAL_2S, 60, "* * * * *", "automation"),
    QueuePolicy("schedules.release", "leads", PRIORITY_HIGH, 3, EXPONENTIAL_2S, 60, "* * * * *", "automation"),
    QueuePolicy("dead_letters.auto_retry", "stats", PRIORITY_LOW, 1, EXPONENTIAL_2S, 300, "*/5 * * * *",
                "automation"),
)

BY_ACTOR = {p.actor: p for p in POLICIES}


@dataclass(frozen=True)
class Pool:
    """A worker pool: the queues it consumes and its threads per process."""

    name: str
    queues: tuple[str, ...]
    threads: int


POOLS = {
    "automation": Pool("automation", ("leads", "campaigns", "stats"), 5),
    "llm": Pool("llm", ("llm",), 2),
    "backup": Pool("backup", ("backup",), 1),
}


@dataclass(frozen=True)
class QueueRules:
    """Flow rules of one queue: backpressure and the dead letters' automatic retry.

    Parameters:
      soft_limit: from this depth (waiting + delayed) on, an enqueue is accepted but deferred by
        ``retry_after_s``, and the HTTP ingress answers 429 so the caller slows down.
      hard_limit: from this depth on, an enqueue is refused (:class:`~cep_automation.errors.QueueFull`, 503).
      retry_after_s: the ``Retry-After`` given with a 429 or a 503, and a soft-limited job's deferral.
      auto_retry_every_s: how long after a transient failure a dead letter is retried again (None: never).
      auto_retry_for_s: how long after its first failure a dead letter stops being retried automatically.
      max_wait_s: the longest a job of this queue waits behind fresher higher-priority work before it goes first
        (None: what its priority allows, :mod:`cep_automation.flow.priority`).
    """

    soft_limit: int
    hard_limit: int
    retry_after_s: int = 30
    auto_retry_every_s: int | None = 900
    auto_retry_for_s: int = 24 * 3600
    max_wait_s: float | None = None


# Sized for CEP: a few hundred leads a day, bursts of a Meta backfill or a CSV import of a few thousand.
QUEUE_RULES: dict[str, QueueRules] = {
    "leads": QueueRules(10_000, 50_000, retry_after_s=5),
    "campaigns": QueueRules(5_000, 20_000),
    "stats": QueueRules(5_000, 20_000, max_wait_s=60),
    "llm": QueueRules(200, 1_000, retry_after_s=60),
    "backup": QueueRules(5, 20, retry_after_s=300),
}
DEFAULT_RULES = QueueRules(10_000, 100_000)  # a queue outside the table (a plugin's, a benchmark's)


def queue_rules(queue: str, overrides: str = "") -> QueueRules:
    """The rules of ``queue``, with its limits replaced by ``overrides`` (``CEP_QUEUE_LIMITS``:
    ``"leads=5000/20000,llm=100/500"``, soft/hard per queue)."""
    rules = QUEUE_RULES.get(queue, DEFAULT_RULES)
    limits = parse_limits(overrides).get(queue)
    return replace(rules, soft_limit=limits[0], hard_limit=limits[1]) if limits else rules


@lru_cache(maxsize=8)  # read on every enqueue: parsed once per distinct setting
def parse_limits(text: str) -> dict[str, tuple[int, int]]:
    """``"leads=5000/20000,llm=100/500"`` → {queue: (soft, hard)}; ValueError says what is malformed."""
    limits: dict[str, tuple[int, int]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        queue, _, numbers = item.partition("=")
        soft, _, hard = numbers.partition("/")
        if not (queue.strip() and soft.strip().isdigit() and hard.strip().isdigit()):
            raise ValueError(f"{item!r} is not QUEUE=SOFT/HARD (whole numbers)")
        if int(soft) > int(hard):
            raise ValueError(f"{item!r}: the soft limit is above the hard limit")
        limits[queue.strip()] = (int(soft), int(hard))
    return limits


def policy(actor: str) -> QueuePolicy:
    """The policy of ``actor``; KeyError names the known actors."""
    try:
        return BY_ACTOR[actor]
    except KeyError:
        raise KeyError(f"no queue policy for {actor!r}; known: {', '.join(BY_ACTOR)}") from None


def actor_options(actor: str) -> dict[str, Any]:
    """Keyword arguments for ``dramatiq.actor`` taken from the policy table."""
    p = policy(actor)
    return {
        "actor_name": p.actor,
        "queue_name": p.queue,
        "priority": p.priority,
        "max_retries": p.max_retries,
        "min_backoff": p.backoff_ms,
        "max_backoff": p.max_backoff_ms,
        "backoff": p.backoff,
        "time_limit": p.time_limit_s * 1000,
    }
