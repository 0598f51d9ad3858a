"""Queue history: one row per queue and minute in ``queue_history``, folded into hourly rows after 30 days.

Each minute's row is read from what already exists, never from a scan: the depths from the broker's lists
and the dead letters' status index (:func:`cep_automation.records.metrics.queue_lengths`, the figures
``queue_length`` exports), and what ended in the minute from the audit rows of that minute
(``audit_log_created_idx``): completed jobs, attempts, failed attempts, jobs dead-lettered and the first
attempts' waits (``audit_log.wait_ms``). A minute is ``[tick − 60 s, tick)`` by the time its audit rows were
written, so consecutive ticks count each row once; writing a minute again replaces it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cep_automation.db import connection
from cep_automation.records import metrics

KEEP_MINUTES = dt.timedelta(days=30)
KEEP_HOURS = dt.timedelta(days=400)
MINUTE = dt.timedelta(minutes=1)
FIELDS = ("waiting", "delayed", "dead", "completed", "attempts", "failed", "dead_lettered", "waits",
          "wait_p50_ms", "wait_p95_ms")

ENDED = """
SELECT queue,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('completed', 'retried', 'dead')) AS attempts,
       count(*) FILTER (WHERE status IN ('retried', 'dead')) AS failed,
       count(*) FILTER (WHERE status = 'dead') AS dead_lettered,
       count(wait_ms) AS waits,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY wait_ms) AS wait_p50_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY wait_ms) AS wait_p95_ms
FROM audit_log WHERE created_at >= %s AND created_at < %s AND queue IS NOT NULL GROUP BY queue
"""

UPSERT = f"""
INSERT INTO queue_history (resolution, period_start, queue, {", ".join(FIELDS)})
VALUES ('minute', %(period_start)s, %(queue)s, {", ".join(f"%({f})s" for f in FIELDS)})
ON CONFLICT (resolution, period_start, queue) DO UPDATE SET
{", ".join(f"{f} = EXCLUDED.{f}" for f in FIELDS)}
"""

# Whole hours older than the cutoff leave the minute rows for one hourly row each (merged into an hour row
# already there, should a run have folded part of that hour before).
FOLD = """
WITH moved AS (
    DELETE FROM queue_history WHERE resolution = 'minute' AND period_start < %(cutoff)s RETURNING *
)
INSERT INTO queue_history AS h (resolution, period_start, queue, waiting, delayed, dead, completed, attempts,
                                failed, dead_lettered, waits, wait_p50_ms, wait_p95_ms, samples)
SELECT 'hour', date_trunc('hour', period_start, 'UTC'), queue, max(waiting), max(delayed), max(dead),
       sum(completed), sum(attempts), sum(failed), sum(dead_lettered), sum(waits),
       sum(wait_p50_ms::bigint * waits) / NULLIF(sum(waits) FILTER (WHERE wait_p50_ms IS NOT NULL), 0),
       max(wait_p95_ms), sum(samples)
FROM moved GROUP BY 2, 3
ON CONFLICT (resolution, period_start, queue) DO UPDATE SET
    waiting = GREATEST(h.waiting, EXCLUDED.waiting), delayed = GREATEST(h.delayed, EXCLUDED.delayed),
    dead = GREATEST(h.dead, EXCLUDED.dead), completed = h.completed + EXCLUDED.completed,
    attempts = h.attempts + EXCLUDED.attempts, failed = h.failed + EXCLUDED.failed,
    dead_lettered = h.dead_lettered + EXCLUDED.dead_lettered, waits = h.waits + EXCLUDED.waits,
    wait_p50_ms = (COALESCE(h.wait_p50_ms::bigint * h.waits, 0) + COALESCE(EXCLUDED.wait_p50_ms::bigint
                   * EXCLUDED.waits, 0)) / NULLIF(h.waits + EXCLUDED.waits, 0),
    wait_p95_ms = GREATEST(h.wait_p95_ms, EXCLUDED.wait_p95_ms), samples = h.samples + EXCLUDED.samples
"""


def minute_of(tick: dt.datetime) -> dt.datetime:
    """The minute a snapshot at ``tick`` records: the whole minute before it."""
    return tick.astimezone(dt.UTC).replace(second=0, microsecond=0) - MINUTE


def snapshot(tick: dt.datetime) -> dict[str, dict[str, Any]]:
    """Measure every queue for the minute before ``tick`` and write its rows; returns queue → figures."""
    start = minute_of(tick)
    lengths = metrics.queue_lengths()
    queues = sorted({queue for queue, _ in lengths})
    rows = {q: {**dict.fromkeys(FIELDS, 0), "wait_p50_ms": None, "wait_p95_ms": None, "queue": q,
                "period_start": start, "waiting": lengths.get((q, "waiting"), 0) + lengths.get((q, "fair"), 0),
                "delayed": lengths.get((q, "delayed"), 0), "dead": lengths.get((q, "dead"), 0)} for q in queues}
    with connection() as conn:
        for ended in conn.execute(ENDED, (start, start + MINUTE)):
            rows.setdefault(ended["queue"], {**dict.fromkeys(FIELDS, 0), "queue": ended["queue"],
                                             "period_start": start}).update(
                {k: v for k, v in ended.items() if k != "queue"})
        conn.cursor().executemany(UPSERT, list(rows.values()))
    return rows


def downsample(now: dt.datetime) -> tuple[int, int]:
    """Fold minute rows older than 30 days into hourly rows, and drop hourly rows older than 400 days.

    Returns (minute rows folded, hourly rows dropped). Both are range deletes on the primary key.
    """
    cutoff = (now - KEEP_MINUTES).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with connection() as conn:
        folded = conn.execute("SELECT count(*) AS n FROM queue_history WHERE resolution = 'minute'"
                              " AND period_start < %s", (cutoff,)).fetchone()
        conn.execute(FOLD, {"cutoff": cutoff})
        dropped = conn.execute("DELETE FROM queue_history WHERE resolution = 'hour' AND period_start < %s",
                               (now - KEEP_HOURS,))
        return (folded["n"] if folded else 0), dropped.rowcount
