"""Erasing a person from our PostgreSQL tables in one transaction: their leads anonymized, every other record
that mentions them scrubbed. Running it again finds nothing left and changes nothing (a retried job)."""

from __future__ import annotations

from typing import Any

import psycopg

from cep_automation.gdpr.needles import ERASED, Needles
from cep_automation.gdpr.sequences import cancel_pending_sequence_steps
from cep_automation.gdpr.subjects import ERASED_NAME, Subject

# The columns where a person may be written down, by table (jsonb columns are scrubbed as their text).
COLUMNS: dict[str, tuple[str, ...]] = {
    "audit_log": ("metadata", "entity_id"),
    "dead_letters": ("payload", "options", "error_message", "traceback", "discard_reason"),
    "effects": ("result", "provider_id", "job_key"),
    "consent_events": ("source",),
}
JSONB = {"metadata", "payload", "options", "result"}

# Statistics keep what they count (course run, campaign, source, dates, consent date); the person goes.
ANONYMIZE = (
    "UPDATE leads SET name = %(erased)s, email = NULL, phone = NULL, consent_ip = NULL, consent_text = NULL,"
    " external_id = CASE WHEN external_id ~* %(pattern)s THEN NULL ELSE external_id END,"
    " erased_at = coalesce(erased_at, now()) WHERE id = ANY(%(ids)s::uuid[])"
    " AND (erased_at IS NULL OR email IS NOT NULL OR phone IS NOT NULL OR name <> %(erased)s)"
)


def anonymize_leads(conn: psycopg.Connection[Any], lead_ids: list[str], needles: Needles) -> int:
    """Anonymize the leads; the count of rows that still held personal data."""
    if not lead_ids:
        return 0
    pattern = needles.identifiers or "$^"
    return conn.execute(ANONYMIZE, {"erased": ERASED_NAME, "pattern": pattern, "ids": lead_ids}).rowcount


def _scrub_column(conn: psycopg.Connection[Any], table: str, column: str, pattern: str, linked_to: str | None) -> int:
    text = f"{column}::text"
    replaced = f"regexp_replace({text}, %(pattern)s, %(erased)s, 'gi')"
    value = f"{replaced}::jsonb" if column in JSONB else replaced
    where = f"{text} ~* %(pattern)s" + (f" AND {table}::text ~* %(linked)s" if linked_to else "")
    sql = f"UPDATE {table} SET {column} = {value} WHERE {where}"  # names from COLUMNS only, never from input
    return conn.execute(sql, {"pattern": pattern, "erased": ERASED, "linked": linked_to}).rowcount


def scrub_tables(conn: psycopg.Connection[Any], needles: Needles) -> dict[str, int]:
    """Rows changed per table: identifiers everywhere, names only in rows that carry one of the lead ids."""
    changed: dict[str, int] = {}
    for table, columns in COLUMNS.items():
        for column in columns:
            count = _scrub_column(conn, table, column, needles.identifiers, None) if needles.identifiers else 0
            if needles.names and needles.lead_ids:
                count += _scrub_column(conn, table, column, needles.names, needles.lead_ids)
            if count:
                changed[table] = changed.get(table, 0) + count
    return changed


def erase_from_database(conn: psycopg.Connection[Any], subject: Subject) -> dict[str, Any]:
    """Anonymize, scrub and cancel, in the caller's transaction; what changed, in numbers."""
    needles = Needles.of(subject)
    ids = sorted(subject.lead_ids)
    return {"leads_anonymized": anonymize_leads(conn, ids, needles), "rows_scrubbed": scrub_tables(conn, needles),
            "sequence_steps_cancelled": cancel_pending_sequence_steps(conn, ids, cause="erased")}
