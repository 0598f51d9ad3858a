"""Moving a lead's sequence through time in tests: days cannot be waited, so a step is made due now.

This is the tests' clock: :func:`bring_due` moves the due time of a lead's pending step (and of the held job that
carries it) to the present, as if the days had passed; ``schedules.release`` then hands it to a worker exactly as
it would on the day. Nothing of the code under test is replaced.
"""

from __future__ import annotations

from typing import Any

import psycopg


def bring_due(conn: psycopg.Connection[Any], lead_id: str, step: str | None = None) -> list[str]:
    """Make the lead's next pending step (or the one named ``step``) due now; the message ids of the jobs moved."""
    rows = conn.execute(
        "WITH target AS (SELECT id FROM sequence_steps WHERE lead_id = %(lead)s AND status = 'pending'"
        " AND (%(step)s::text IS NULL OR name = %(step)s) ORDER BY due_at LIMIT CASE WHEN %(step)s::text IS NULL"
        " THEN 1 END), moved AS (UPDATE sequence_steps s SET due_at = now() - interval '1 second' FROM target"
        " WHERE s.id = target.id RETURNING s.message_id)"
        " UPDATE scheduled_jobs j SET run_at = now() - interval '1 second' FROM moved"
        " WHERE j.message_id = moved.message_id AND j.status = 'scheduled' RETURNING j.message_id",
        {"lead": lead_id, "step": step}).fetchall()
    return [row["message_id"] for row in rows]


def steps_by_name(conn: psycopg.Connection[Any], lead_id: str) -> dict[str, dict[str, Any]]:
    """The lead's steps by ``sequence/name``."""
    rows = conn.execute("SELECT e.sequence, s.* FROM sequence_steps s JOIN sequence_enrollments e"
                        " ON e.id = s.enrollment_id WHERE s.lead_id = %s", (lead_id,)).fetchall()
    return {f"{row['sequence']}/{row['name']}": row for row in rows}
