"""Releasing held jobs: what ``schedules.release`` does every minute.

Due rows of ``scheduled_jobs`` are taken ``FOR UPDATE SKIP LOCKED`` a batch at a time (two releasers, threads of
one pass or passes on two hosts, never take the same row) and sent through the one enqueue path under the
message id their caller was given: a batch's enqueues go to Redis in one pipeline and its rows are marked in one
``UPDATE``, in the transaction that locked them. A pass takes batch after batch until nothing due within
:data:`LOOKAHEAD` is left or its time (:data:`BUDGET_S`) is up, so 100,000 jobs due in one minute go out in
seconds. A job is released up to :data:`LOOKAHEAD` before it is due, into Dramatiq's delay queue for the rest
of the wait, so it starts on time although the releaser runs once a minute; Redis holds it for that last
stretch only. A debounced job is released only once its quiet period is over (a later trigger may still move it).

Each released job keeps its idempotency key, or gets ``scheduled:<message id>``: a release repeated after a
crash between the enqueue and the commit is taken for the duplicate it is (and marked released then).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import PayloadError, PayloadTooLarge, QueueFull, ScheduleError, UnknownJob
from cep_automation.records import scheduled_jobs
from cep_automation.runtime.enqueue import Prepared, actor_named, enqueue_many, idempotency_key, prepare

logger = logging.getLogger("cep_automation.runtime.scheduling")
LOOKAHEAD = dt.timedelta(seconds=90)  # over the releaser's period (60 s), so a job is in its queue on time
BATCH = 1000  # rows per transaction: one SELECT … FOR UPDATE, one pipeline, one UPDATE
BUDGET_S = 40.0  # a pass stops taking batches after this long (the actor's time limit is 60 s)
RELEASERS = 2  # batches released at once by one pass (threads: one overlaps its round trips with another's work)
UNFIT = (UnknownJob, PayloadError, PayloadTooLarge, ScheduleError)  # a job that will never enqueue: failed


@dataclass
class Released:
    """What one pass did: jobs released, jobs that failed for good, and the queues found full."""

    released: int = 0
    failed: int = 0
    full: list[str] = field(default_factory=list)
    batches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, released: int, failed: int, full: list[str]) -> None:
        with self._lock:
            self.released, self.failed, self.batches = self.released + released, self.failed + failed, self.batches + 1
            self.full.extend(queue for queue in full if queue not in self.full)


def release_due(limit: int = BATCH, lookahead: dt.timedelta = LOOKAHEAD, *, budget_s: float = BUDGET_S,
                releasers: int = RELEASERS) -> Released:
    """Release the jobs due within ``lookahead``, ``limit`` rows per transaction, until none is left or
    ``budget_s`` has passed; ``releasers`` batches at a time. A full queue keeps its jobs (they wait for the next
    pass); a job that can no longer be enqueued (unknown job, payload that no longer fits) is marked failed."""
    outcome, deadline = Released(), time.monotonic() + budget_s
    if releasers <= 1:
        _release_until(outcome, limit, lookahead, deadline)
    else:
        with ThreadPoolExecutor(releasers, thread_name_prefix="releaser") as pool:
            for each in [pool.submit(_release_until, outcome, limit, lookahead, deadline) for _ in range(releasers)]:
                each.result()
    with connection() as conn:
        scheduled_jobs.purge_finished(conn)
    return outcome


def _release_until(outcome: Released, limit: int, lookahead: dt.timedelta, deadline: float) -> None:
    """Take batches until one comes back short (nothing due is left that no other releaser holds) or time is up."""
    while release_batch(outcome, limit, lookahead) >= limit and time.monotonic() < deadline:
        pass


def release_batch(outcome: Released, limit: int = BATCH, lookahead: dt.timedelta = LOOKAHEAD) -> int:
    """Release one batch in one transaction; how many rows it took. A row whose enqueue Redis refused stays held
    (the error is raised once the others are committed: the next pass or retry takes it again)."""
    released, failed, full, errors = [], 0, list(outcome.full), []
    with connection() as conn:
        rows = scheduled_jobs.due(conn, lookahead, limit, skip_queues=full)
        now = dt.datetime.now(dt.UTC)
        jobs: list[tuple[dict[str, Any], Prepared | Exception]] = [(row, _prepared(row, now)) for row in rows]
        ready = [job for _, job in jobs if isinstance(job, Prepared)]
        sent = iter(enqueue_many(ready))
        for row, job in jobs:
            result = next(sent) if isinstance(job, Prepared) else job
            if isinstance(result, QueueFull):
                if row["queue"] not in full:
                    logger.warning("Not releasing jobs to %s yet: %s", row["queue"], result)
                    full.append(row["queue"])
            elif isinstance(result, UNFIT):
                logger.error("Scheduled job %s (%s) cannot be enqueued: %s", row["message_id"], row["actor"], result)
                scheduled_jobs.mark_failed(conn, row["message_id"], str(result))
                failed += 1
            elif isinstance(result, Exception):
                errors.append(result)
            else:
                released.append(row["message_id"])
        scheduled_jobs.mark_released_many(conn, released)
    outcome.add(len(released), failed, full)
    if errors:
        raise errors[0]
    return len(rows)


def _prepared(row: dict[str, Any], now: dt.datetime) -> Prepared | Exception:
    """A held job made into its message, due in what is left of its wait; the error if it no longer can be."""
    try:
        actor = actor_named(str(row["actor"]))
        payload, options = row["payload"], dict(row["options"])
        args, kwargs = tuple(payload.get("args", ())), dict(payload.get("kwargs", {}))
        options[opt.IDEMPOTENCY_KEY] = idempotency_key(actor, kwargs, options) or f"scheduled:{row['message_id']}"
        remaining_ms = int((row["run_at"] - now).total_seconds() * 1000)
        return prepare(actor, kwargs, args=args, delay=remaining_ms if remaining_ms > 0 else None,
                       message_id=str(row["message_id"]), **options)
    except UNFIT as exc:
        return exc
