"""Consent lifecycle: each change recorded with its date and source, and marketing stopped at once.

A withdrawal is effective the moment it is committed: ``lead.created`` and any later marketing step read
``consent_withdrawn_at`` before they act, and pending sequence steps are cancelled in the same transaction.
The marketing list follows through the ``consent.sync`` job (unsubscribed; or pending, when consent is
given again to a member Mailchimp holds in a compliance state).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from cep_automation.errors import PermanentError
from cep_automation.gdpr.sequences import cancel_pending_sequence_steps

STATES = ("given", "withdrawn")


class LeadNotFound(PermanentError):
    """No lead has that id."""


class LeadErased(PermanentError):
    """The lead was erased under the GDPR: there is no consent left to change."""


@dataclass(frozen=True)
class ConsentChange:
    """A recorded change; ``marketing_allowed`` is the lead's state after it."""

    lead_id: str
    state: str
    source: str
    recorded_at: dt.datetime
    marketing_allowed: bool
    has_email: bool


def record_consent(conn: psycopg.Connection[Any], lead_id: str, state: str, source: str) -> ConsentChange:
    """Record ``given`` or ``withdrawn`` for the lead, in one transaction; raise for an unknown or erased lead."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}")
    with conn.transaction():
        lead = conn.execute("SELECT id::text AS id, erased_at, email FROM leads WHERE id = %s FOR UPDATE",
                            (lead_id,)).fetchone()
        if lead is None:
            raise LeadNotFound(f"no lead {lead_id}")
        if lead["erased_at"] is not None:
            raise LeadErased(f"lead {lead_id} was erased under the GDPR")
        event = conn.execute("INSERT INTO consent_events (lead_id, state, source) VALUES (%s, %s, %s)"
                             " RETURNING recorded_at", (lead_id, state, source)).fetchone()
        at: dt.datetime = event["recorded_at"] if event else dt.datetime.now(dt.UTC)  # RETURNING always has one
        if state == "withdrawn":
            conn.execute("UPDATE leads SET consent_withdrawn_at = %s WHERE id = %s", (at, lead_id))
            cancel_pending_sequence_steps(conn, [lead_id])
        else:
            conn.execute("UPDATE leads SET consent_withdrawn_at = NULL, consent_at = coalesce(consent_at, %s)"
                         " WHERE id = %s", (at, lead_id))
    return ConsentChange(lead_id, state, source, at, state == "given", bool(lead["email"]))
