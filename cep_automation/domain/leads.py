"""Loading a lead with its course, run and campus, as ``lead.created`` needs it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow

TELEMATICO = "Telemático"


@dataclass(frozen=True)
class LeadView:
    """A lead joined with what the automations need to know about it."""

    id: str
    name: str
    email: str | None
    phone: str | None
    source: str
    consent_at: dt.datetime | None
    consent_withdrawn_at: dt.datetime | None
    erased_at: dt.datetime | None
    created_at: dt.datetime
    course_title: str | None
    offer_type: str | None
    campus_id: int | None
    campus_name: str | None
    advisor_phone: str | None

    @property
    def has_consent(self) -> bool:
        """Consent recorded and not withdrawn since (a withdrawal stops marketing at once)."""
        return self.consent_at is not None and self.consent_withdrawn_at is None

    @property
    def erased(self) -> bool:
        """Anonymized under the GDPR: no step may contact or send this lead anywhere again."""
        return self.erased_at is not None

    @property
    def campus_label(self) -> str:
        """The campus name, or ``Telemático`` for an online run (or no run)."""
        return self.campus_name or TELEMATICO


def load_lead(conn: psycopg.Connection[DictRow], lead_id: str) -> LeadView | None:
    row = conn.execute(
        "SELECT l.id::text AS id, l.name, l.email, l.phone, l.source, l.consent_at, l.consent_withdrawn_at,"
        " l.erased_at, l.created_at,"
        " c.title AS course_title, c.offer_type, ca.id AS campus_id, ca.name AS campus_name, ca.advisor_phone"
        " FROM leads l LEFT JOIN course_runs r ON r.id = l.course_run_id LEFT JOIN courses c ON c.id = r.course_id"
        " LEFT JOIN campuses ca ON ca.id = r.campus_id WHERE l.id = %s",
        (lead_id,),
    ).fetchone()
    return LeadView(**row) if row else None
