"""A person who unsubscribes (Mailchimp's unsubscribe webhook, "BAJA"/"STOP" on WhatsApp) leaves every sequence.

Each of their leads (found as the GDPR finds a person: by normalized email or phone, following linked leads)
leaves its sequences with the cause ``unsubscribed``, every pending step cancelled at once, and their consent to
marketing is recorded as withdrawn with where it came from, so no later job markets to them either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cep_automation.db import connection
from cep_automation.gdpr import record_consent
from cep_automation.gdpr.consent import LeadErased
from cep_automation.gdpr.subjects import find_subject
from cep_automation.sequences import lifecycle

logger = logging.getLogger("cep_automation.web.unsubscribe")


@dataclass(frozen=True)
class Unsubscribed:
    leads: list[str]
    steps_cancelled: int
    with_email: list[str]


def unsubscribe(kind: str, value: str, source: str) -> Unsubscribed:
    """Stop marketing to the person with this normalized email or phone (``kind``), from ``source``."""
    with connection() as conn:
        subject = find_subject(conn, kind, value)
        leads = sorted(subject.lead_ids)
        with conn.transaction():
            cancelled = lifecycle.leave(conn, leads, "unsubscribed")
        with_email = []
        for lead_id in leads:
            try:
                change = record_consent(conn, lead_id, "withdrawn", source)
            except LeadErased:
                continue
            if change.has_email:
                with_email.append(lead_id)
    logger.info("Unsubscribed from %s: %d lead(s), %d pending step(s) cancelled", source, len(leads), cancelled)
    return Unsubscribed(leads, cancelled, with_email)
