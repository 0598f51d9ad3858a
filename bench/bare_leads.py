"""The baseline: ``lead.created``'s job logic on bare Dramatiq, with nothing of cep_automation's stack.

The same integrations (the same plugin objects, so the same HTTP clients, WhatsApp rate limiter and
redacted log lines) are called in the same order as :func:`cep_automation.actors.leads.lead_created`
— Mailchimp, WhatsApp to the lead, Mandrill, WhatsApp to the advisor, the CRMs, the live counter —
after loading the lead with the same query, and the lead enters its sequences (job logic since the
sequences came: a plain actor does it in its own transaction). What is left out is what the benchmarks measure: the
effects ledger, payload validation, idempotency keys, job state and progress, audit rows, dead
letters, per-step outcomes and our retry policy. A step's exception fails the whole message, and
Dramatiq's own ``Retries`` retries it, as a plain Dramatiq actor would.
"""

from __future__ import annotations

from typing import TypeVar

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from cep_automation.actors.leads import contact_of, count_live, enter_sequences, whatsapp_template
from cep_automation.db import connection
from cep_automation.domain.leads import load_lead
from cep_automation.plugins.integration import Integration
from cep_automation.plugins.kinds import (
    CRM,
    EmailMarketing,
    Messaging,
    TransactionalEmail,
)
from cep_automation.queues import policy
from cep_automation.runtime import integrations
from cep_automation.settings import get_settings

K = TypeVar("K", bound=Integration)


def first(kind: type[K]) -> K:
    """The first enabled integration of ``kind`` (the one our job would use)."""
    return integrations.enabled(kind)[0]


def lead_created(lead_id: str) -> None:
    """Follow up one lead: every integration once, in our job's order; any failure fails the message."""
    with connection() as conn:
        lead = load_lead(conn, str(lead_id))
    if lead is None:
        raise LookupError(f"lead {lead_id} not found")
    settings = get_settings()
    if lead.has_consent and lead.email:
        first(EmailMarketing).upsert_contact(contact_of(lead))
    if lead.has_consent and lead.phone:
        first(Messaging).send_template(
            lead.phone, whatsapp_template(lead.offer_type), "es", [lead.name, lead.course_title or ""])
    if lead.email:
        first(TransactionalEmail).send_template(
            settings.mandrill_lead_template, lead.email, lead.name,
            {"NAME": lead.name, "COURSE": lead.course_title or "", "CAMPUS": lead.campus_label}, {"lead_id": lead.id})
    if lead.advisor_phone:
        first(Messaging).send_template(
            lead.advisor_phone, settings.whatsapp_advisor_template, "es",
            [lead.name, lead.course_title or "", lead.campus_label])
    if settings.crm_enabled:
        for crm in integrations.enabled(CRM):
            crm.upsert_lead(contact_of(lead))
    count_live(lead)
    if lead.has_consent:
        with connection() as conn:
            enter_sequences(conn, lead.id)


def make_broker(redis_url: str, namespace: str) -> RedisBroker:
    """A plain ``RedisBroker`` with Dramatiq's default middleware, in its own namespace (``<ns>-bare``)."""
    return RedisBroker(url=redis_url, namespace=f"{namespace}-bare")


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:  # type: ignore[type-arg]
    """The baseline actor on ``broker``: our job's name, queue, attempts and time limit; Dramatiq's defaults else."""
    rule = policy("lead.created")
    return dramatiq.actor(lead_created, actor_name="lead.created", queue_name=rule.queue, broker=broker,
                          max_retries=rule.max_retries, time_limit=rule.time_limit_s * 1000)
