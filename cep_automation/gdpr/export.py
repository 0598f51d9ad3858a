"""The access export (GDPR art. 15): everything we hold about a person, as one JSON document.

Leads (every column), their consent history, the messages sent to them (the effects ledger of their
``lead.created``), their sequences (none until issue 14 builds them), the audit entries about their leads,
and the erasure requests naming them (by keyed hash).
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from typing import Any

import psycopg

from cep_automation.gdpr.identifiers import hash_key, keyed_hash, normalize
from cep_automation.gdpr.subjects import find_subject

LEADS = (
    "SELECT l.*, c.title AS course, ca.name AS campus, cp.name AS campaign FROM leads l"
    " LEFT JOIN course_runs r ON r.id = l.course_run_id LEFT JOIN courses c ON c.id = r.course_id"
    " LEFT JOIN campuses ca ON ca.id = r.campus_id LEFT JOIN campaigns cp ON cp.id = l.campaign_id"
    " WHERE l.id = ANY(%s::uuid[]) ORDER BY l.created_at"
)


def _plain(value: Any) -> Any:
    """A JSON-ready value (dates as ISO 8601, UUIDs, addresses and decimals as text)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _rows(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [_plain(dict(row)) for row in conn.execute(sql, params).fetchall()]


def export_subject(conn: psycopg.Connection[Any], kind: str, value: str) -> dict[str, Any]:
    """What we hold about the person named by an email (or phone, or lead id)."""
    normalized = normalize(kind, value)
    subject = find_subject(conn, kind, normalized)
    ids = sorted(subject.lead_ids)
    job_keys = [f"lead.created:{i}" for i in ids]
    hashes = [keyed_hash(hash_key(conn), "email", e) for e in subject.emails]
    hashes += [keyed_hash(hash_key(conn), "phone", p) for p in subject.phones]
    return {
        "subject": {kind: normalized},
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "leads": _rows(conn, LEADS, (ids,)),
        "consent": _rows(conn, "SELECT lead_id, state, source, recorded_at FROM consent_events"
                               " WHERE lead_id = ANY(%s::uuid[]) ORDER BY recorded_at, id", (ids,)),
        "messages": _rows(conn, "SELECT split_part(job_key, ':', 2) AS lead_id, step, provider_id, created_at"
                                " FROM effects WHERE job_key = ANY(%s) ORDER BY created_at, id", (job_keys,)),
        "sequences": [],  # issue 14 (sequences) is not built yet: nobody is in one
        "audit": _rows(conn, "SELECT action, status, message_id, entity_id AS lead_id, metadata, created_at"
                             " FROM audit_log WHERE entity_type = 'lead' AND entity_id = ANY(%s)"
                             " ORDER BY created_at, id", (ids,)),
        "erasures": _rows(conn, "SELECT id, status, requested_at, completed_at, outcomes FROM gdpr_erasures"
                                " WHERE identifier_hash = ANY(%s) OR subject_hashes && %s::text[]"
                                " ORDER BY requested_at", (hashes, hashes)),
    }
