"""``meta.leadgen``: fetch a Meta Lead Ads lead, store it once, and start ``lead.created`` for it.

The webhook only enqueues this job, because Meta wants its 200 quickly; the Graph API call happens
here, with the usual retries. The lead is stored under the external id ``meta:<leadgen id>``, so a
replayed delivery or a retry inserts nothing new and starts no second ``lead.created``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from cep_automation.actors.leads import lead_created
from cep_automation.db import connection
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins.kinds import Ads
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job

META_ID = r"^[0-9]{1,32}$"  # Graph ids are numeric; anything else must never reach a Graph URL path

INSERT_LEAD = (
    "INSERT INTO leads (external_id, name, email, phone, source, campaign_id, consent_at, consent_text, created_at)"
    " VALUES (%(external_id)s, %(name)s, %(email)s, %(phone)s, 'meta',"
    " (SELECT id FROM campaigns WHERE meta_campaign_id = %(campaign)s ORDER BY id LIMIT 1),"
    " %(created_at)s, %(consent_text)s, %(created_at)s)"
    " ON CONFLICT (external_id) DO NOTHING RETURNING id::text"
)


class MetaLeadgenPayload(BaseModel):
    """One ``leadgen`` change of a Meta webhook delivery (ids as strings, times in Unix seconds)."""

    leadgen_id: str = Field(pattern=META_ID)
    page_id: str = Field(pattern=META_ID)
    form_id: str = Field(pattern=META_ID)
    ad_id: str | None = Field(default=None, pattern=META_ID)
    created_time: int = Field(ge=0)


def external_id(leadgen_id: str) -> str:
    return f"meta:{leadgen_id}"


def ads_integration(leadgen_id: str) -> Ads:
    """The Meta integration if enabled (else the first ads one); PermanentError says what to set."""
    found = integrations.enabled(Ads)
    if not found:
        raise PermanentError(f"cannot fetch Meta lead {leadgen_id}: {integrations.why_none(Ads)}")
    return next((ads for ads in found if ads.name == "meta"), found[0])


def parse_time(value: Any, fallback: int) -> dt.datetime:
    """Graph's ``2025-10-08T09:09:27+0000``, else the webhook's Unix time."""
    if isinstance(value, str) and value:
        try:
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(fallback, dt.UTC)


def lead_row(lead: dict[str, Any], leadgen_id: str, form_id: str, created_time: int) -> dict[str, Any]:
    """The ``leads`` columns of a fetched lead. Meta lead forms cannot be sent without consent."""
    answers = lead.get("field_data") or {}
    name = answers.get("full_name") or " ".join(
        part for part in (answers.get("first_name"), answers.get("last_name")) if part)
    form = lead.get("form_id") or form_id
    return {
        "external_id": external_id(leadgen_id),
        "name": (name or f"Meta lead {leadgen_id}").strip(),
        "email": (answers.get("email") or "").strip().lower() or None,
        "phone": (answers.get("phone_number") or "").strip() or None,
        "campaign": lead.get("campaign_id"),
        "created_at": parse_time(lead.get("created_time"), created_time),
        "consent_text": f"Consent given in Meta Lead Ads form {form} (required to submit the form)",
    }


def store_lead(conn: psycopg.Connection[Any], row: dict[str, Any]) -> tuple[str, bool]:
    """Insert the lead unless its external id is known; returns (lead id, whether it is new)."""
    inserted = conn.execute(INSERT_LEAD, row).fetchone()
    if inserted is not None:
        return inserted["id"], True
    existing = conn.execute("SELECT id::text FROM leads WHERE external_id = %s", (row["external_id"],)).fetchone()
    if existing is None:  # deleted between the two statements: insert again on the retry
        raise TransientError(f"lead {row['external_id']} vanished while being stored")
    return existing["id"], False


@job("meta.leadgen", schema=MetaLeadgenPayload, idempotency_key="meta.leadgen:{leadgen_id}",
     audit_entity=("meta_lead", "leadgen_id"))
def meta_leadgen(leadgen_id: str, page_id: str, form_id: str, created_time: int,
                 ad_id: str | None = None) -> dict[str, Any]:
    """Fetch the lead from the Graph API, store it once, and enqueue ``lead.created`` for it once.

    The enqueue is a step of the effects ledger, done after the insert's commit (so lead.created never
    looks for a lead that is not visible yet) on every attempt until it is recorded: an attempt that died
    between the insert and the enqueue is made good by the next one, which finds the lead already stored.
    ``lead.created``'s own idempotency key makes a repeated enqueue return the first message.
    """
    handle = current_job()
    lead = ads_integration(leadgen_id).fetch_lead(leadgen_id)
    handle.progress(50)
    with connection() as conn:
        lead_id, created = store_lead(conn, lead_row(lead, leadgen_id, form_id, created_time))
    ledger = Ledger(f"meta.leadgen:{leadgen_id}")
    ledger.run("enqueue_lead_created", lambda: lead_created.send(lead_id=lead_id).message_id)
    ledger.flush()
    handle.log(f"Meta lead {leadgen_id} (page {page_id}, form {form_id}) "
               + (f"stored as lead {lead_id}" if created else f"already stored as lead {lead_id}"))
    return {"lead_id": lead_id, "created": created, "leadgen_id": leadgen_id}
