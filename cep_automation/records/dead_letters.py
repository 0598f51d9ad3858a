"""Dead letters: messages that will not be retried, kept in PostgreSQL for operators.

The operations here (list, show, discard, stats, purge, and the two halves of a retry) are
shared by the CLI and the HTTP service. A retry goes through the one enqueue path
(:func:`cep_automation.runtime.enqueue.retry_dead_letter`), so the payload is validated again and
gets a new message id, linked from the dead letter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import CepError, DeadLetterNotFound
from cep_automation.records.spool import Spool

STATUSES = ("dead", "retried", "discarded")
__all__ = ["STATUSES", "SPOOL", "TRANSIENT_ERROR_TYPES", "DeadLetter", "DeadLetterNotFound", "auto_retry_due",
           "discard", "flush_spool", "get_letter", "list_letters", "mark_retried", "purge", "record", "retries",
           "retryable", "stats"]

# Error types (as stored in error_type) of failures that may go away by themselves: a provider's timeout, 5xx or
# 429 (steps raise TransientError and its subclasses for those), a time limit, a Retry-After too long to park,
# a retry that could not be enqueued, a service that did not answer. Every other type is permanent for the
# automatic retry: PermanentError, PayloadError, a poison message (DeliveryLimit), a bug (KeyError …).
TRANSIENT_ERROR_TYPES = frozenset({
    "TransientError", "Unconfirmed", "Postponed", "BackupBusy", "ServiceUnavailable", "TimeLimitExceeded",
    "RetryAfterTooLong", "RetryNotEnqueued",
})


@dataclass
class DeadLetter:
    """One message that will not be retried, with why."""

    queue: str
    actor: str
    message_id: str
    payload: dict[str, Any]
    options: dict[str, Any]
    error_type: str
    error_message: str
    traceback: str
    attempts: int
    enqueued_at: dt.datetime | None = None
    failed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def asjson(self) -> dict[str, Any]:
        data = asdict(self)
        data["enqueued_at"] = self.enqueued_at.isoformat() if self.enqueued_at else None
        data["failed_at"] = self.failed_at.isoformat()
        return data

    @classmethod
    def fromjson(cls, data: dict[str, Any]) -> DeadLetter:
        data = dict(data)
        data["enqueued_at"] = dt.datetime.fromisoformat(data["enqueued_at"]) if data.get("enqueued_at") else None
        data["failed_at"] = dt.datetime.fromisoformat(data["failed_at"])
        return cls(**data)


def record(conn: psycopg.Connection[DictRow], letter: DeadLetter) -> None:
    """Insert a dead letter (a redelivered copy of the same message updates it)."""
    conn.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message,"
        " traceback, attempts, enqueued_at, failed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (message_id) DO UPDATE SET error_type = EXCLUDED.error_type,"
        " error_message = EXCLUDED.error_message, traceback = EXCLUDED.traceback, attempts = EXCLUDED.attempts,"
        " failed_at = EXCLUDED.failed_at, status = 'dead', updated_at = now()",
        (letter.queue, letter.actor, letter.message_id, Jsonb(letter.payload), Jsonb(letter.options),
         letter.error_type, letter.error_message, letter.traceback, letter.attempts, letter.enqueued_at,
         letter.failed_at),
    )


def list_letters(conn: psycopg.Connection[DictRow], *, status: str | None = "dead", queue: str | None = None,
                 actor: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Dead letters, newest first, filtered and paged."""
    return conn.execute(
        "SELECT id, queue, actor, message_id, error_type, error_message, attempts, status, failed_at,"
        " retried_message_id, retried_by, discard_reason,"
        " coalesce((options->'cep_auto_retry'->>'count')::int, 0) AS auto_retries FROM dead_letters"
        " WHERE (%(status)s::text IS NULL OR status = %(status)s) AND (%(queue)s::text IS NULL OR queue = %(queue)s)"
        " AND (%(actor)s::text IS NULL OR actor = %(actor)s) ORDER BY failed_at DESC, id DESC"
        " LIMIT %(limit)s OFFSET %(offset)s",
        {"status": status, "queue": queue, "actor": actor, "limit": limit, "offset": offset},
    ).fetchall()


def get_letter(conn: psycopg.Connection[DictRow], letter_id: int, *, lock: bool = False) -> dict[str, Any]:
    """Every column of one dead letter (``lock``: locked for this transaction); raises :class:`DeadLetterNotFound`."""
    row = conn.execute("SELECT * FROM dead_letters WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       (letter_id,)).fetchone()
    if row is None:
        raise DeadLetterNotFound(f"no dead letter with id {letter_id}")
    return row


def retryable(conn: psycopg.Connection[DictRow], letter_id: int) -> dict[str, Any]:
    """The dead letter to retry, locked (an operator's and the automatic retry never both retry it): its
    actor, payload and job options (without the failed delivery's)."""
    row = get_letter(conn, letter_id, lock=True)
    if row["status"] != "dead":
        raise CepError(f"dead letter {letter_id} is already {row['status']}; only 'dead' ones can be retried")
    options = {k: v for k, v in row["options"].items() if k not in opt.DELIVERY_OPTIONS}
    options[opt.RETRY_OF] = row["message_id"]
    return {"message_id": row["message_id"], "actor": row["actor"], "args": tuple(row["payload"].get("args", ())),
            "kwargs": row["payload"].get("kwargs", {}), "options": options}


def mark_retried(conn: psycopg.Connection[DictRow], letter_id: int, message_id: str, by: str = "operator") -> None:
    """Link the dead letter to the message that retries it, and note the retry (``by``: operator or auto)."""
    row = conn.execute("UPDATE dead_letters SET status = 'retried', retried_message_id = %s, retried_by = %s,"
                       " updated_at = now() WHERE id = %s RETURNING error_type", (message_id, by, letter_id)).fetchone()
    conn.execute("INSERT INTO dead_letter_retries (letter_id, message_id, retried_by, error_type)"
                 " VALUES (%s, %s, %s, %s)", (letter_id, message_id, by, row["error_type"] if row else None))


def retries(conn: psycopg.Connection[DictRow], letter_id: int) -> list[dict[str, Any]]:
    """Every retry of a dead letter, oldest first: when, by whom, as which message."""
    return conn.execute("SELECT message_id, retried_by, error_type, retried_at FROM dead_letter_retries"
                        " WHERE letter_id = %s ORDER BY id", (letter_id,)).fetchall()


def auto_retry_due(conn: psycopg.Connection[DictRow], queue: str, every_s: int, for_s: int,
                   limit: int = 500) -> list[dict[str, Any]]:
    """Dead letters of ``queue`` to retry automatically now, oldest first, locked (another retrier skips them).

    Due: still dead, failed of a transient error at least ``every_s`` ago, and first failed (the chain's first
    dead letter, kept in the option ``cep_auto_retry``) less than ``for_s`` ago.
    """
    return conn.execute(
        "SELECT id, failed_at, options->'cep_auto_retry' AS auto_retry FROM dead_letters WHERE status = 'dead'"
        " AND queue = %(queue)s AND error_type = ANY(%(types)s)"
        " AND failed_at <= now() - make_interval(secs => %(every)s)"
        " AND coalesce((options->'cep_auto_retry'->>'since')::timestamptz, failed_at)"
        " > now() - make_interval(secs => %(for)s) ORDER BY failed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
        {"queue": queue, "types": sorted(TRANSIENT_ERROR_TYPES), "every": every_s, "for": for_s, "limit": limit},
    ).fetchall()


def discard(conn: psycopg.Connection[DictRow], letter_id: int, reason: str) -> None:
    """Mark a dead letter as deliberately abandoned, with the operator's reason."""
    if not reason.strip():
        raise CepError("a reason is required to discard a dead letter")
    get_letter(conn, letter_id)
    conn.execute("UPDATE dead_letters SET status = 'discarded', discard_reason = %s, updated_at = now()"
                 " WHERE id = %s", (reason.strip(), letter_id))


def stats(conn: psycopg.Connection[DictRow]) -> list[dict[str, Any]]:
    """Counts by queue and status."""
    return conn.execute("SELECT queue, status, count(*) AS count FROM dead_letters"
                        " GROUP BY queue, status ORDER BY queue, status").fetchall()


def purge(conn: psycopg.Connection[DictRow], older_than_days: int) -> int:
    """Delete dead letters that failed more than ``older_than_days`` days ago; returns how many."""
    if older_than_days < 0:
        raise CepError("--older-than must be zero or more days")
    cursor = conn.execute("DELETE FROM dead_letters WHERE failed_at < now() - make_interval(days => %s)",
                          (older_than_days,))
    return cursor.rowcount


SPOOL = Spool("dlq")


def flush_spool(limit: int = 1000) -> int:
    """Write spooled dead letters to PostgreSQL; returns how many were written (an upsert: a repeat is harmless)."""
    def write(row: dict[str, Any]) -> None:
        with connection() as conn:
            record(conn, DeadLetter.fromjson(row))

    return SPOOL.drain(write, limit)
