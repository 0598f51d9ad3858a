"""Erasure records: one row per request in ``gdpr_erasures``, and a copy of each finished one in Redis.

The row proves what was done where and when, naming the person only by keyed hashes. While the erasure
runs it also holds their identifiers (``pending_subject``), which it needs to finish after a retry; they are
dropped when it ends. The Redis journal (``{namespace}:gdpr:erasures``, no expiry) outlives a database
restore, so ``cep-automation gdpr reapply`` can erase again what an old backup brought back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cep_automation.db.redis_client import get_redis, key
from cep_automation.gdpr.identifiers import hash_key, keyed_hash, normalize
from cep_automation.gdpr.subjects import Subject

PUBLIC = ("id", "identifier_kind", "identifier_hash", "subject_hashes", "lead_ids", "status", "outcomes",
          "requested_via", "message_id", "requested_at", "completed_at")


def journal_key() -> str:
    return key("gdpr", "erasures")


@dataclass
class Erasure:
    """One erasure request and what became of it."""

    id: str
    identifier_kind: str
    identifier_hash: str
    status: str = "pending"
    subject_hashes: list[str] = field(default_factory=list)
    lead_ids: list[str] = field(default_factory=list)
    pending_subject: dict[str, Any] | None = None
    outcomes: dict[str, Any] = field(default_factory=dict)
    requested_via: str = ""
    message_id: str | None = None
    requested_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status != "pending"

    def public(self) -> dict[str, Any]:
        """The record without the pending identifiers, JSON-ready."""
        data = {name: getattr(self, name) for name in PUBLIC}
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in data.items()}


def _row(row: dict[str, Any] | None) -> Erasure:
    if row is None:
        raise LookupError("the erasure record vanished")  # RETURNING gives a row unless someone deleted it
    return Erasure(**{**row, "id": str(row["id"]), "lead_ids": [str(i) for i in row["lead_ids"] or []]})


def open_erasure(conn: psycopg.Connection[Any], kind: str, value: str, via: str) -> tuple[Erasure, bool]:
    """The pending erasure of this identifier, or a new one; True when it already existed."""
    normalized = normalize(kind, value)
    identifier_hash = keyed_hash(hash_key(conn), kind, normalized)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (identifier_hash,))
        existing = conn.execute("SELECT * FROM gdpr_erasures WHERE identifier_hash = %s AND status = 'pending'"
                                " ORDER BY requested_at LIMIT 1", (identifier_hash,)).fetchone()
        if existing is not None:
            return _row(existing), True
        row = conn.execute(
            "INSERT INTO gdpr_erasures (id, identifier_kind, identifier_hash, pending_subject, requested_via)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), kind, identifier_hash, Jsonb({"kind": kind, "value": normalized}), via)).fetchone()
    return _row(row), False


def load_erasure(conn: psycopg.Connection[Any], erasure_id: str) -> Erasure | None:
    row = conn.execute("SELECT * FROM gdpr_erasures WHERE id = %s", (erasure_id,)).fetchone()
    return _row(row) if row else None


def set_message(conn: psycopg.Connection[Any], erasure_id: str, message_id: str) -> None:
    conn.execute("UPDATE gdpr_erasures SET message_id = coalesce(message_id, %s) WHERE id = %s",
                 (message_id, erasure_id))


def subject_hashes(conn: psycopg.Connection[Any], subject: Subject) -> list[str]:
    key_bytes = hash_key(conn)
    return sorted({keyed_hash(key_bytes, "email", e) for e in subject.emails}
                  | {keyed_hash(key_bytes, "phone", p) for p in subject.phones})


def save_subject(conn: psycopg.Connection[Any], erasure: Erasure, subject: Subject) -> None:
    """Keep the resolved person (until the erasure ends) and the hashes and lead ids that outlive it."""
    erasure.subject_hashes, erasure.lead_ids = subject_hashes(conn, subject), sorted(subject.lead_ids)
    erasure.pending_subject = {"resolved": True, **subject.as_json()}
    conn.execute("UPDATE gdpr_erasures SET pending_subject = %s, subject_hashes = %s, lead_ids = %s::uuid[]"
                 " WHERE id = %s", (Jsonb(erasure.pending_subject), erasure.subject_hashes, erasure.lead_ids,
                                    erasure.id))


def finish(conn: psycopg.Connection[Any], erasure: Erasure, outcomes: dict[str, Any], manual: bool) -> Erasure:
    """Record the outcome, forget the identifiers, and journal the record in Redis."""
    row = conn.execute(
        "UPDATE gdpr_erasures SET status = %s, outcomes = %s, pending_subject = NULL,"
        " completed_at = coalesce(completed_at, now()) WHERE id = %s RETURNING *",
        ("manual_action" if manual else "completed", Jsonb(outcomes), erasure.id)).fetchone()
    done = _row(row)
    journal(done)
    return done


def journal(erasure: Erasure) -> None:
    get_redis().hset(journal_key(), erasure.id, json.dumps(erasure.public()))


def journaled() -> list[dict[str, Any]]:
    """Every finished erasure the Redis journal holds."""
    return [json.loads(v) for v in get_redis().hvals(journal_key())]


def restore_record(conn: psycopg.Connection[Any], record: dict[str, Any]) -> bool:
    """Put a journaled record back into a restored database (a backup taken mid-erasure has it pending, with the
    identifiers: they go); True if the database did not have it finished."""
    inserted = conn.execute(
        "INSERT INTO gdpr_erasures (id, identifier_kind, identifier_hash, subject_hashes, lead_ids, status, outcomes,"
        " requested_via, message_id, requested_at, completed_at) VALUES (%(id)s, %(identifier_kind)s,"
        " %(identifier_hash)s, %(subject_hashes)s, %(lead_ids)s::uuid[], %(status)s, %(outcomes)s, %(requested_via)s,"
        " %(message_id)s, %(requested_at)s, %(completed_at)s) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
        " outcomes = EXCLUDED.outcomes, subject_hashes = EXCLUDED.subject_hashes, lead_ids = EXCLUDED.lead_ids,"
        " completed_at = EXCLUDED.completed_at, pending_subject = NULL WHERE gdpr_erasures.status = 'pending'",
        {**record, "outcomes": Jsonb(record.get("outcomes") or {})}).rowcount
    return bool(inserted)
