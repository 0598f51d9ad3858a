"""A lead's timeline: its sequences and every step — done, pending with its due time, skipped with the reason,
cancelled with the cause — for ``cep-automation leads show`` and the dashboard's lead page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from cep_automation.sequences import store


def timeline(conn: psycopg.Connection[Any], lead_id: str) -> dict[str, Any] | None:
    """The lead (no contact details), its enrollments and steps in time order; None for an unknown lead."""
    lead = conn.execute(
        "SELECT id::text AS id, status, status_changed_at, created_at, consent_at, consent_withdrawn_at, erased_at,"
        " course_run_id FROM leads WHERE id = %s", (lead_id,)).fetchone()
    if lead is None:
        return None
    return {"lead": lead, "sequences": store.enrollments_of(conn, lead_id), "steps": store.steps_of(conn, lead_id)}


def as_json(found: dict[str, Any]) -> dict[str, Any]:
    """The same, with instants as ISO 8601 strings."""
    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    result: dict[str, Any] = plain(found)
    return result


def step_line(step: dict[str, Any], zone: dt.tzinfo) -> str:
    """One line of the timeline: ``2026-12-02 10:00 nurture/course_details email — sent (…)``."""
    when = step["done_at"] if step["status"] != "pending" and step["done_at"] else step["due_at"]
    label = "due" if step["status"] == "pending" else step["status"]
    detail = f" — {step['detail']}" if step.get("detail") else ""
    return (f"{when.astimezone(zone):%Y-%m-%d %H:%M %Z}  {step['sequence']}/{step['name']} ({step['channel']}): "
            f"{label}{detail}")
