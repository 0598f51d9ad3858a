"""``lead.created``: follow up a new lead — Mailchimp, confirmation email, WhatsApp, CRMs, live stats.

Every step runs once per lead (the effects ledger), a failed step does not stop the others, and
marketing steps (Mailchimp, the WhatsApp template to the lead) run only with recorded consent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from pydantic import BaseModel

from cep_automation.db import connection
from cep_automation.db.redis_client import get_redis, key
from cep_automation.domain.leads import LeadView, load_lead
from cep_automation.errors import PermanentError
from cep_automation.plugins.integration import Integration
from cep_automation.plugins.kinds import (
    CRM,
    Contact,
    EmailMarketing,
    Messaging,
    TransactionalEmail,
)
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job
from cep_automation.runtime.steps import StepRunner
from cep_automation.sequences import lifecycle
from cep_automation.sequences.definition import configured
from cep_automation.settings import get_settings

OFFER_TYPES = ("telematico", "ocupados", "desempleados", "privados")
LIVE_STATS_TTL_S = 40 * 24 * 3600
K = TypeVar("K", bound=Integration)


class LeadCreatedPayload(BaseModel):
    lead_id: uuid.UUID


def whatsapp_template(offer_type: str | None) -> str:
    """``lead_confirmation_<offer type>``, or the generic template for anything else."""
    return f"lead_confirmation_{offer_type}" if offer_type in OFFER_TYPES else "lead_confirmation_generic"


def contact_of(lead: LeadView) -> Contact:
    return Contact.from_name(
        lead.name, email=lead.email or "", phone=lead.phone or "", source=lead.source, external_id=lead.id,
        tags=tuple(t for t in ("lead", lead.offer_type) if t),
        merge_fields={"PHONE": lead.phone or "", "COURSE": lead.course_title or "", "CAMPUS": lead.campus_label},
    )


def live_stats_key(day: dt.date) -> str:
    return key("stats", "live", day.isoformat())


def count_live(lead: LeadView, pipe: Any = None) -> str:
    """Leads per campus and day, for the live dashboard (campus 0 = telemático): into ``pipe`` when given (the
    ledger's round trip, with the step's record), else in a round trip of its own."""
    day = lead.created_at.astimezone(dt.UTC).date()
    into = get_redis().pipeline() if pipe is None else pipe
    into.hincrby(live_stats_key(day), str(lead.campus_id or 0), 1)
    into.expire(live_stats_key(day), LIVE_STATS_TTL_S)
    if pipe is None:
        into.execute()
    return f"{day}:{lead.campus_id or 0}"


Step = Callable[[], object]


def marketing_steps(steps: StepRunner, lead: LeadView) -> list[Step]:
    """Mailchimp and the WhatsApp template to the lead — only with consent."""
    if not lead.has_consent:
        for step in ("mailchimp", "whatsapp_lead"):
            steps.skip(step, "no recorded consent (RGPD)")
        return []
    return [
        lambda: run_with(steps, "mailchimp", EmailMarketing, lambda m: m.upsert_contact(contact_of(lead)),
                         missing=None if lead.email else "lead has no email"),
        lambda: send_whatsapp(steps, "whatsapp_lead", lead.phone, whatsapp_template(lead.offer_type),
                              [lead.name, lead.course_title or ""], missing="lead has no phone"),
    ]


def send_whatsapp(steps: StepRunner, step: str, to: str | None, template: str, params: list[str], *,
                  missing: str) -> None:
    """A WhatsApp template, sent once: with a service that confirms sends, a job that died while sending
    asks before it sends again (``Ledger.run_confirmable``); otherwise a plain ledger step."""
    if not to:
        steps.skip(step, missing)
        return
    messaging = integrations.first(Messaging)
    if messaging is None:
        steps.skip(step, integrations.why_none(Messaging))
        return
    if not messaging.confirms_sends:
        steps.run(step, lambda: messaging.send_template(to, template, "es", params))
        return
    steps.run_confirmable(step, lambda reference: messaging.send_template(to, template, "es", params,
                                                                          reference=reference),
                          messaging.confirmed, grace_s=get_settings().whatsapp_confirm_grace_s)


def run_with(steps: StepRunner, step: str, kind: type[K], action: Callable[[K], Any],
             missing: str | None = None, *, at_most_once: bool = False) -> None:
    """Run ``action(integration)`` with the first enabled integration of ``kind``, or skip saying why;
    ``at_most_once``: never repeat a send an earlier attempt may have made (``StepRunner.run_at_most_once``)."""
    if missing:
        steps.skip(step, missing)
        return
    found = integrations.first(kind)
    if found is None:
        steps.skip(step, integrations.why_none(kind))
        return
    (steps.run_at_most_once if at_most_once else steps.run)(step, lambda: action(found))


def notice_steps(steps: StepRunner, lead: LeadView) -> list[Step]:
    """The confirmation email to the lead and the WhatsApp notice to the campus advisor."""
    settings = get_settings()
    # `missing=` skips the step when the address is absent; `or ""` only narrows the type.
    return [
        lambda: run_with(steps, "confirmation_email", TransactionalEmail,
                         lambda m: m.send_template(settings.mandrill_lead_template, lead.email or "", lead.name,
                                                   {"NAME": lead.name, "COURSE": lead.course_title or "",
                                                    "CAMPUS": lead.campus_label}, {"lead_id": lead.id}),
                         missing=None if lead.email else "lead has no email"),
        lambda: send_whatsapp(steps, "whatsapp_advisor", lead.advisor_phone, settings.whatsapp_advisor_template,
                              [lead.name, lead.course_title or "", lead.campus_label],
                              missing=f"campus {lead.campus_label} has no advisor phone"),
    ]


def sequence_entry(steps: StepRunner, lead: LeadView) -> None:
    """Enter the sequences that start with a new lead (nurture, course_start), with consent only: when the job's
    steps are stored, in the same transaction."""
    if not lead.has_consent:
        steps.skip("sequences", "no recorded consent (RGPD)")
        return
    steps.with_flush("sequences", lambda conn: enter_sequences(conn, lead.id))


def enter_sequences(conn: psycopg.Connection[Any], lead_id: str) -> str:
    """Each sequence entered on ``lead.created`` (in the ledger's flush transaction); what happened, per sequence."""
    names = [name for name, sequence in configured().items() if "lead.created" in sequence.enter_on]
    entries = lifecycle.enter_all(conn, lead_id, names)
    return "; ".join(f"{e.sequence}: " + (f"entered, {e.pending} step(s) pending" if e.enrollment_id
                                          else f"not entered ({e.reason})") for e in entries) or "no sequence"


def crm_steps(steps: StepRunner, lead: LeadView) -> list[Step]:
    if not get_settings().crm_enabled:
        return [lambda: steps.skip("crm", "CRM_ENABLED is false")]
    crms = integrations.enabled(CRM)
    if not crms:
        return [lambda: steps.skip("crm", integrations.why_none(CRM))]
    return [_upsert_into(steps, crm, lead) for crm in crms]


def _upsert_into(steps: StepRunner, crm: CRM, lead: LeadView) -> Step:
    """The CRM step, bound to this CRM (not to the loop variable)."""
    return lambda: steps.run(f"crm:{crm.name}", lambda: crm.upsert_lead(contact_of(lead)))


@job("lead.created", schema=LeadCreatedPayload, idempotency_key="lead.created:{lead_id}",
     audit_action="lead.automated", audit_entity=("lead", "lead_id"))
def lead_created(lead_id: str) -> dict[str, Any]:
    """Run every follow-up step of a new lead once, at once; retry only the steps that failed."""
    handle = current_job()
    with connection() as conn:
        lead = load_lead(conn, str(lead_id))
        if lead is not None:
            ledger = Ledger(f"lead.created:{lead.id}")
            ledger.preload(conn)  # the steps done before, read in the lead's transaction
    if lead is None:
        raise PermanentError(f"lead {lead_id} not found")
    if lead.erased:  # e.g. an operator's retry of an old dead letter, after the person was forgotten
        handle.log("lead erased under the GDPR: nothing to do")
        return {"lead_id": lead.id, "skipped": "erased under the GDPR"}
    handle.progress(10)
    steps = StepRunner(ledger, handle)
    sequence_entry(steps, lead)
    # The provider calls do not depend on each other: they run at once, and the lead is followed up in about the
    # time of the slowest. The live counter and its record are one local Redis round trip, in this thread, which
    # also carries the records of the steps this thread ran last.
    with ledger.batched():
        steps.concurrently([*marketing_steps(steps, lead), *notice_steps(steps, lead), *crm_steps(steps, lead)])
        steps.run_in_redis("live_stats", lambda pipe: count_live(lead, pipe))
    handle.progress(90)
    outcomes = steps.finish()
    handle.progress(100)
    return {"lead_id": lead.id, "steps": outcomes}
