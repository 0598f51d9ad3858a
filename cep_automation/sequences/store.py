"""Enrollments and their steps in PostgreSQL: the SQL of sequences, each statement an index lookup.

Running one step costs two statements (:func:`step_to_run`, :func:`finish_step`) besides the ledger's; the
functions take the caller's connection, so entering or leaving a sequence is one transaction with the held jobs
it writes or cancels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

OPEN = ("active", "paused")


@dataclass(frozen=True)
class NewStep:
    id: str
    position: int
    name: str
    channel: str
    due_at: dt.datetime
    message_id: str | None  # None for a step written already done (skipped at entry)
    status: str = "pending"
    detail: str | None = None


def insert_enrollment(conn: psycopg.Connection[Any], lead_id: str, sequence: str, subject: str,
                      base_at: dt.datetime) -> str | None:
    """A new enrollment's id, or None when the lead is (or was) in this sequence for this subject already."""
    row = conn.execute(
        "INSERT INTO sequence_enrollments (lead_id, sequence, subject, base_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (lead_id, sequence, subject) DO NOTHING RETURNING id::text AS id",
        (lead_id, sequence, subject, base_at)).fetchone()
    return row["id"] if row else None


def insert_steps(conn: psycopg.Connection[Any], lead_id: str, steps: list[tuple[str, NewStep]]) -> None:
    """The steps of a lead's new enrollments, (enrollment id, step) each, in one round trip."""
    if not steps:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sequence_steps (id, enrollment_id, lead_id, position, name, channel, due_at, message_id,"
            " status, detail, done_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " CASE WHEN %s = 'pending' THEN NULL ELSE now() END)",
            [(s.id, enrollment_id, lead_id, s.position, s.name, s.channel, s.due_at, s.message_id, s.status, s.detail,
              s.status) for enrollment_id, s in steps])


def lead_for_entry(conn: psycopg.Connection[Any], lead_id: str) -> dict[str, Any] | None:
    """What entering needs: consent, erasure, status and the course run the lead asked about."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT l.id::text AS id, l.status, l.erased_at, l.consent_at, l.consent_withdrawn_at,"
        " l.course_run_id, r.starts_on FROM leads l LEFT JOIN course_runs r ON r.id = l.course_run_id"
        " WHERE l.id = %s", (lead_id,)).fetchone()
    return row


def step_to_run(conn: psycopg.Connection[Any], step_id: str) -> dict[str, Any] | None:
    """A step with its enrollment, lead, course, run and campus, in one statement."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT s.id::text AS id, s.lead_id::text AS lead_id, s.name, s.channel, s.position, s.due_at,"
        " s.message_id, s.status, s.attempts, e.id::text AS enrollment_id, e.sequence, e.status AS enrollment_status,"
        " l.name AS lead_name, l.email, l.phone, l.status AS lead_status, l.consent_at, l.consent_withdrawn_at,"
        " l.erased_at, c.title AS course_title, c.offer_type, r.starts_on, ca.name AS campus_name,"
        " ca.advisor_phone"
        " FROM sequence_steps s JOIN sequence_enrollments e ON e.id = s.enrollment_id"
        " JOIN leads l ON l.id = s.lead_id LEFT JOIN course_runs r ON r.id = l.course_run_id"
        " LEFT JOIN courses c ON c.id = r.course_id LEFT JOIN campuses ca ON ca.id = r.campus_id"
        " WHERE s.id = %s", (step_id,)).fetchone()
    return row


def finish_step(conn: psycopg.Connection[Any], step_id: str, status: str, detail: str | None) -> bool:
    """Record a pending step's end; its enrollment completes with its last step. False if it had ended already
    (a step cancelled while its send was under way is still recorded as sent: that is what happened)."""
    row = conn.execute(
        "WITH done AS (UPDATE sequence_steps SET status = %(status)s, detail = %(detail)s, done_at = now(),"
        " attempts = attempts + 1 WHERE id = %(id)s AND (status = 'pending'"
        # a send that went out while the lead was leaving is recorded as what it was
        " OR %(status)s = 'sent' AND status = 'cancelled') RETURNING enrollment_id),"
        " completed AS (UPDATE sequence_enrollments e SET status = 'completed', ended_at = now() FROM done"
        " WHERE e.id = done.enrollment_id AND e.status = 'active' AND NOT EXISTS (SELECT 1 FROM sequence_steps p"
        " WHERE p.enrollment_id = e.id AND p.status = 'pending' AND p.id <> %(id)s) RETURNING e.id)"
        " SELECT (SELECT count(*) FROM done) AS finished",
        {"id": step_id, "status": status, "detail": detail}).fetchone()
    return bool(row and row["finished"])


def note_attempt(conn: psycopg.Connection[Any], step_id: str, detail: str) -> None:
    """A failed attempt that will be retried: the step stays pending, saying what went wrong."""
    conn.execute("UPDATE sequence_steps SET attempts = attempts + 1, detail = %s WHERE id = %s AND status = 'pending'",
                 (detail, step_id))


def move_step(conn: psycopg.Connection[Any], step_id: str, message_id: str, due_at: dt.datetime,
              detail: str | None) -> None:
    """A pending step carried by a new held job (after a resume, or to the next opening of marketing hours)."""
    conn.execute("UPDATE sequence_steps SET message_id = %s, due_at = %s, detail = %s WHERE id = %s"
                 " AND status = 'pending'", (message_id, due_at, detail, step_id))


def end_enrollments(conn: psycopg.Connection[Any], lead_ids: list[str], *, status: str, cause: str,
                    sequence: str | None = None) -> list[dict[str, Any]]:
    """End the leads' open enrollments (exited) and cancel their pending steps; each cancelled step's
    ``message_id`` and ``sequence`` are returned so their held jobs are cancelled in the same transaction."""
    rows: list[dict[str, Any]] = conn.execute(
        "WITH ended AS (UPDATE sequence_enrollments SET status = %(status)s, exit_cause = %(cause)s, ended_at = now()"
        " WHERE lead_id = ANY(%(leads)s::uuid[]) AND status IN ('active', 'paused')"
        " AND (%(sequence)s::text IS NULL OR sequence = %(sequence)s) RETURNING id, sequence)"
        " , cancelled AS (UPDATE sequence_steps s SET status = 'cancelled', detail = %(cause)s, done_at = now()"
        " FROM ended WHERE s.enrollment_id = ended.id AND s.status = 'pending' RETURNING s.message_id)"
        " SELECT ended.sequence, NULL::text AS message_id FROM ended UNION ALL"
        " SELECT NULL, message_id FROM cancelled",
        {"leads": lead_ids, "status": status, "cause": cause, "sequence": sequence}).fetchall()
    return rows


def set_paused(conn: psycopg.Connection[Any], lead_id: str, sequence: str | None, paused: bool) -> list[dict[str, Any]]:
    """Pause active (or resume paused) enrollments of a lead; their pending steps (id, message id, due time)."""
    rows: list[dict[str, Any]] = conn.execute(
        "WITH changed AS (UPDATE sequence_enrollments SET status = %(to)s,"
        " paused_at = CASE WHEN %(to)s = 'paused' THEN now() ELSE NULL END"
        " WHERE lead_id = %(lead)s AND status = %(from)s AND (%(sequence)s::text IS NULL OR sequence = %(sequence)s)"
        " RETURNING id, sequence)"
        " SELECT changed.sequence, s.id::text AS step_id, s.message_id, s.due_at, s.channel"
        " FROM changed LEFT JOIN sequence_steps s ON s.enrollment_id = changed.id AND s.status = 'pending'"
        " ORDER BY s.position",
        {"lead": lead_id, "sequence": sequence, "to": "paused" if paused else "active",
         "from": "active" if paused else "paused"}).fetchall()
    return rows


def enrollments_of(conn: psycopg.Connection[Any], lead_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(
        "SELECT id::text AS id, sequence, subject, status, exit_cause, base_at, entered_at, paused_at, ended_at"
        " FROM sequence_enrollments WHERE lead_id = %s ORDER BY entered_at, sequence", (lead_id,)).fetchall()
    return rows


def steps_of(conn: psycopg.Connection[Any], lead_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(
        "SELECT s.id::text AS id, e.sequence, s.position, s.name, s.channel, s.due_at, s.status, s.detail,"
        " s.attempts, s.done_at, s.message_id FROM sequence_steps s JOIN sequence_enrollments e"
        " ON e.id = s.enrollment_id WHERE s.lead_id = %s ORDER BY s.due_at, e.sequence, s.position",
        (lead_id,)).fetchall()
    return rows


def set_lead_status(conn: psycopg.Connection[Any], lead_id: str, status: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "UPDATE leads SET status = %s, status_changed_at = now() WHERE id = %s"
        " RETURNING id::text AS id, status, status_changed_at, erased_at", (status, lead_id)).fetchone()
    return row

