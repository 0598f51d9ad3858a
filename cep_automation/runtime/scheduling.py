"""Releasing held jobs: what ``schedules.release`` does every minute.

Due rows of ``scheduled_jobs`` are taken ``FOR UPDATE SKIP LOCKED`` (two releasers, on two hosts, never take
the same row) and sent through the one enqueue path under the message id their caller was given. A job is
released up to :data:`LOOKAHEAD` before it is due, into Dramatiq's delay queue for the rest of the wait, so
it starts on time although the releaser runs once a minute; Redis holds it for that last stretch only. A
debounced job is released only once its quiet period is over (a later trigger may still move it).

Each released job keeps its idempotency key, or gets ``scheduled:<message id>``: a release repeated after a
crash between the enqueue and the commit is taken for the duplicate it is.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import PayloadError, PayloadTooLarge, QueueFull, ScheduleError, UnknownJob
from cep_automation.records import scheduled_jobs
from cep_automation.runtime.enqueue import actor_named, enqueue, idempotency_key

logger = logging.getLogger("cep_automation.runtime.scheduling")
LOOKAHEAD = dt.timedelta(seconds=90)  # over the releaser's period (60 s), so a job is in its queue on time
BATCH = 1000


@dataclass
class Released:
    """What one pass did: jobs released, jobs that failed for good, and the queues found full."""

    released: int = 0
    failed: int = 0
    full: list[str] = field(default_factory=list)


def release_due(limit: int = BATCH, lookahead: dt.timedelta = LOOKAHEAD) -> Released:
    """Release up to ``limit`` due jobs. A full queue stops its jobs (they wait for the next pass);
    a job that can no longer be enqueued (unknown job, payload that no longer fits) is marked failed."""
    outcome = Released()
    with connection() as conn:
        now = dt.datetime.now(dt.UTC)
        for row in scheduled_jobs.due(conn, lookahead, limit):
            if row["queue"] in outcome.full:
                continue
            try:
                release(row, now)
            except QueueFull as exc:
                logger.warning("Not releasing jobs to %s yet: %s", row["queue"], exc)
                outcome.full.append(row["queue"])
                continue
            except (UnknownJob, PayloadError, PayloadTooLarge, ScheduleError) as exc:
                logger.error("Scheduled job %s (%s) cannot be enqueued: %s", row["message_id"], row["actor"], exc)
                scheduled_jobs.mark_failed(conn, row["message_id"], str(exc))
                outcome.failed += 1
                continue
            scheduled_jobs.mark_released(conn, row["message_id"])
            outcome.released += 1
        scheduled_jobs.purge_finished(conn)
    return outcome


def release(row: dict[str, object], now: dt.datetime) -> None:
    """Enqueue one held job, due in what is left of its wait."""
    actor = actor_named(str(row["actor"]))
    payload = row["payload"]
    assert isinstance(payload, dict) and isinstance(row["options"], dict) and isinstance(row["run_at"], dt.datetime)
    args, kwargs = tuple(payload.get("args", ())), dict(payload.get("kwargs", {}))
    options = dict(row["options"])
    options[opt.IDEMPOTENCY_KEY] = idempotency_key(actor, kwargs, options) or f"scheduled:{row['message_id']}"
    remaining_ms = int((row["run_at"] - now).total_seconds() * 1000)
    enqueue(actor, kwargs, args=args, delay=remaining_ms if remaining_ms > 0 else None,
            message_id=str(row["message_id"]), released=True, **options)
