"""Jobs held in PostgreSQL until their time: far ``run_at``/``delay`` and debounced jobs.

Redis keeps a job only for the last stretch before it is due (Dramatiq's delay queue); what is due
later waits here, where a Redis flush or failover cannot reach it. ``schedules.release``
(:mod:`cep_automation.runtime.scheduling`) takes due rows ``FOR UPDATE SKIP LOCKED`` and sends each
through the one enqueue path under the message id the caller was given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cep_automation.errors import ScheduledJobNotFound

STATUSES = ("scheduled", "released", "cancelled", "failed")
KEEP_FINISHED = dt.timedelta(days=7)  # released, cancelled and failed rows are kept this long for lookups

__all__ = ["STATUSES", "cancel", "cancel_many", "count_waiting", "due", "get", "hold", "hold_many", "list_waiting",
           "mark_failed", "mark_released", "mark_released_many", "purge_finished"]


def hold(conn: psycopg.Connection[DictRow], *, message_id: str, actor: str, queue: str, payload: dict[str, Any],
         options: dict[str, Any], run_at: dt.datetime, debounce_key: str | None = None) -> tuple[str, int]:
    """Hold a job until ``run_at``; returns (its message id, how many triggers it gathered).

    With a ``debounce_key`` a job already waiting under that key is moved to ``run_at`` and takes the new
    payload (the last trigger wins), keeping its message id.
    """
    row = conn.execute(
        "INSERT INTO scheduled_jobs (message_id, actor, queue, payload, options, run_at, debounce_key)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (debounce_key) WHERE status = 'scheduled' DO UPDATE SET run_at = EXCLUDED.run_at,"
        " payload = EXCLUDED.payload, options = EXCLUDED.options, triggers = scheduled_jobs.triggers + 1,"
        " updated_at = now() RETURNING message_id, triggers",
        (message_id, actor, queue, Jsonb(payload), Jsonb(options), run_at, debounce_key),
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row it wrote
    return row["message_id"], row["triggers"]


def hold_many(conn: psycopg.Connection[DictRow], jobs: list[tuple[str, str, str, dict[str, Any], dt.datetime]]) -> None:
    """Hold several jobs without a debounce key in one round trip: (message id, actor, queue, payload, run_at)."""
    if not jobs:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO scheduled_jobs (message_id, actor, queue, payload, options, run_at)"
            " VALUES (%s, %s, %s, %s, '{}'::jsonb, %s)",
            [(message_id, actor, queue, Jsonb(payload), run_at) for message_id, actor, queue, payload, run_at in jobs])


def get(conn: psycopg.Connection[DictRow], message_id: str) -> dict[str, Any] | None:
    """The held job ``message_id`` whatever its status, or None."""
    return conn.execute("SELECT * FROM scheduled_jobs WHERE message_id = %s", (message_id,)).fetchone()


def cancel(conn: psycopg.Connection[DictRow], message_id: str) -> dict[str, Any]:
    """Cancel a job still held; raises :class:`ScheduledJobNotFound` saying why it cannot be."""
    row = conn.execute("UPDATE scheduled_jobs SET status = 'cancelled', updated_at = now()"
                       " WHERE message_id = %s AND status = 'scheduled' RETURNING *", (message_id,)).fetchone()
    if row is not None:
        return row
    held = get(conn, message_id)
    if held is None:
        raise ScheduledJobNotFound(f"no scheduled job {message_id!r}: only jobs held for later (run_at or delay"
                                   " beyond CEP_SCHEDULE_HOLD_AFTER_S, or debounced) can be cancelled")
    when = f" at {held['released_at']:%Y-%m-%d %H:%M:%S %Z}" if held["released_at"] else ""
    raise ScheduledJobNotFound(f"scheduled job {message_id!r} cannot be cancelled: it is already {held['status']}"
                               f"{when}")


def cancel_many(conn: psycopg.Connection[DictRow], message_ids: list[str]) -> list[str]:
    """Cancel those of ``message_ids`` still held, in the caller's transaction; the ids it cancelled."""
    if not message_ids:
        return []
    rows = conn.execute("UPDATE scheduled_jobs SET status = 'cancelled', updated_at = now()"
                        " WHERE message_id = ANY(%s) AND status = 'scheduled' RETURNING message_id",
                        (message_ids,)).fetchall()
    return [row["message_id"] for row in rows]


def due(conn: psycopg.Connection[DictRow], lookahead: dt.timedelta, limit: int, *,
        skip_queues: Collection[str] = ()) -> list[dict[str, Any]]:
    """Held jobs due within ``lookahead`` (debounced ones only once due: their quiet period may still grow),
    earliest first, locked for this transaction; rows another releaser holds are skipped, and so are the jobs
    of ``skip_queues`` (queues found full)."""
    return conn.execute(
        "SELECT * FROM scheduled_jobs WHERE status = 'scheduled' AND run_at <= now() + CASE"
        " WHEN debounce_key IS NULL THEN %s ELSE interval '0' END AND queue <> ALL(%s)"
        " ORDER BY run_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (lookahead, list(skip_queues), limit),
    ).fetchall()


def mark_released(conn: psycopg.Connection[DictRow], message_id: str) -> None:
    mark_released_many(conn, [message_id])


def mark_released_many(conn: psycopg.Connection[DictRow], message_ids: list[str]) -> None:
    """Mark jobs released, in one statement (the releaser's batch)."""
    if message_ids:
        conn.execute("UPDATE scheduled_jobs SET status = 'released', released_at = now(), updated_at = now()"
                     " WHERE message_id = ANY(%s)", (message_ids,))


def mark_failed(conn: psycopg.Connection[DictRow], message_id: str, error: str) -> None:
    """A held job that can no longer be enqueued (its job was removed, its payload no longer fits the schema)."""
    conn.execute("UPDATE scheduled_jobs SET status = 'failed', error = %s, updated_at = now()"
                 " WHERE message_id = %s", (error, message_id))


def list_waiting(conn: psycopg.Connection[DictRow], *, queue: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Jobs still held, soonest first."""
    return conn.execute(
        "SELECT message_id, actor, queue, run_at, debounce_key, triggers, created_at FROM scheduled_jobs"
        " WHERE status = 'scheduled' AND (%(queue)s::text IS NULL OR queue = %(queue)s) ORDER BY run_at"
        " LIMIT %(limit)s", {"queue": queue, "limit": limit}).fetchall()


def waiting_by_queue(conn: psycopg.Connection[DictRow]) -> list[dict[str, Any]]:
    """Per queue: how many jobs are held, how many of them are debounced, and when the next is due."""
    return conn.execute(
        "SELECT queue, count(*) AS held, count(debounce_key) AS debounced, min(run_at) AS next_run_at"
        " FROM scheduled_jobs WHERE status = 'scheduled' GROUP BY queue ORDER BY queue").fetchall()


def count_waiting(conn: psycopg.Connection[DictRow], within: list[dt.timedelta]) -> list[int]:
    """How many jobs are still held and due within each of ``within`` from now (one indexed scan)."""
    if not within:
        return []
    columns = ", ".join(f"count(*) FILTER (WHERE run_at <= now() + %(w{n})s) AS w{n}" for n in range(len(within)))
    row = conn.execute(f"SELECT {columns} FROM scheduled_jobs WHERE status = 'scheduled'"
                       " AND run_at <= now() + %(widest)s",
                       {"widest": max(within), **{f"w{n}": each for n, each in enumerate(within)}}).fetchone()
    assert row is not None  # an aggregate always answers one row
    return [int(value) for value in row.values()]


def purge_finished(conn: psycopg.Connection[DictRow], older_than: dt.timedelta = KEEP_FINISHED) -> int:
    """Delete released, cancelled and failed rows last changed more than ``older_than`` ago."""
    return conn.execute("DELETE FROM scheduled_jobs WHERE status <> 'scheduled' AND updated_at < now() - %s",
                        (older_than,)).rowcount
