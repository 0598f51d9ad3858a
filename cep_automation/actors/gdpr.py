"""``gdpr.erase``, ``consent.sync`` and ``data.retention``: the GDPR/RGPD jobs (docs/gdpr.md).

``gdpr.erase`` carries only the erasure's id: the person's identifiers stay in ``gdpr_erasures`` until it
ends, never in a message, a job record, the audit log or the dead letters. It erases our own stores first
(one transaction, then Redis), then asks every enabled integration that may hold the person through the
effects ledger, so a retry asks again only the ones that failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel

from cep_automation.db import connection
from cep_automation.domain.leads import load_lead
from cep_automation.errors import PermanentError
from cep_automation.gdpr import Needles, Subject, erase_from_database, erase_from_redis, find_subject, run_retention
from cep_automation.gdpr.records import Erasure, finish, load_erasure, open_erasure, save_subject, set_message
from cep_automation.plugins.erasure import DataSubject, ErasureUnsupported
from cep_automation.plugins.integration import Integration
from cep_automation.plugins.kinds import CRM, Ads, EmailMarketing, Messaging, TransactionalEmail
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.enqueue import enqueue
from cep_automation.runtime.job import JobHandle, current_job
from cep_automation.runtime.steps import StepRunner
from cep_automation.settings import get_settings

# The kinds of integration we send a person's data to; each enabled one is asked to erase them.
PERSONAL_KINDS: tuple[type[Integration], ...] = (EmailMarketing, TransactionalEmail, Messaging, CRM, Ads)
MANUAL = "manual action needed"


class GdprErasePayload(BaseModel):
    """Only the erasure's id: start erasures with ``cep-automation gdpr erase`` or ``POST /v1/gdpr/erasures``."""

    erasure_id: uuid.UUID


class ConsentSyncPayload(BaseModel):
    lead_id: uuid.UUID


class DataRetentionPayload(BaseModel):
    """No payload: the limits are the ``CEP_RETENTION_*`` settings."""


@dataclass(frozen=True)
class ErasureRequest:
    """What a front-end answers: the erasure, its job's message, and whether both already existed."""

    erasure_id: str
    message_id: str
    deduplicated: bool


def request_erasure(kind: str, value: str, via: str) -> ErasureRequest:
    """Open (or find the pending) erasure of one identifier and enqueue its job: the one path of CLI and HTTP."""
    with connection() as conn:
        erasure, existing = open_erasure(conn, kind, value, via)
    enqueued = enqueue(gdpr_erase, {"erasure_id": erasure.id})
    with connection() as conn:
        set_message(conn, erasure.id, enqueued.message_id)
    return ErasureRequest(erasure.id, enqueued.message_id, existing or enqueued.duplicate)


def resolve(erasure: Erasure) -> Subject:
    """The person, found once from the identifier and kept on the record until the erasure ends."""
    pending = erasure.pending_subject or {}
    if pending.get("resolved"):
        return Subject.from_json(pending)
    with connection() as conn:
        subject = find_subject(conn, str(pending["kind"]), str(pending["value"]))
        save_subject(conn, erasure, subject)
    return subject


def erase_locally(subject: Subject, handle: JobHandle) -> dict[str, Any]:
    with connection() as conn:
        database = erase_from_database(conn, subject)
    handle.log(f"database: {database['leads_anonymized']} lead(s) anonymized; rows scrubbed: "
               f"{database['rows_scrubbed']}")
    cached = erase_from_redis(Needles.of(subject)).asdict()
    handle.log(f"redis: {cached['keys_rewritten']} key(s) scrubbed, {cached['keys_deleted']} deleted")
    return {"database": database, "redis": cached}


def _ask(integration: Integration, subject: DataSubject) -> dict[str, Any]:
    """One integration's erasure, as the ledger records it: what it did, or that it cannot."""
    try:
        return {"provider_id": None, "erased": integration.erase_contact(subject)}
    except ErasureUnsupported as exc:
        return {"provider_id": None, "manual": str(exc)}


def erase_at_providers(steps: StepRunner, subject: DataSubject) -> dict[str, Any]:
    """Every enabled integration of a personal kind, at once; its outcome by ``kind:name``."""
    found = {f"{i.kind}:{i.name}": i for kind in PERSONAL_KINDS for i in integrations.enabled(kind)}
    effects: dict[str, Any] = {}

    def call(name: str, integration: Integration) -> Any:
        return lambda: effects.__setitem__(name, steps.run(f"erase:{name}", lambda: _ask(integration, subject)))

    steps.concurrently([call(name, integration) for name, integration in found.items()])
    steps.finish()  # a failure raises here: transient ones retry (alone), permanent ones go to the dead letters
    outcomes = {}
    for name, effect in effects.items():
        result = effect.result if effect is not None and isinstance(effect.result, dict) else {}
        outcomes[name] = (f"{MANUAL}: {result['manual']}" if "manual" in result
                          else f"erased: {result.get('erased', 'done')}")
    return outcomes


@job("gdpr.erase", schema=GdprErasePayload, idempotency_key="gdpr.erase:{erasure_id}",
     audit_entity=("gdpr_erasure", "erasure_id"))
def gdpr_erase(erasure_id: str) -> dict[str, Any]:
    """Erase the person of one erasure request everywhere; a finished erasure is reported, not redone."""
    handle = current_job()
    with connection() as conn:
        erasure = load_erasure(conn, str(erasure_id))
    if erasure is None:
        raise PermanentError(f"no erasure {erasure_id}: start one with `cep-automation gdpr erase`")
    if erasure.finished:
        return erasure.public()
    subject = resolve(erasure)
    handle.progress(10)
    local = erase_locally(subject, handle)
    handle.progress(50)
    providers = erase_at_providers(StepRunner(Ledger(f"gdpr.erase:{erasure.id}"), handle),
                                   subject.for_integrations())
    manual = [name for name, outcome in providers.items() if outcome.startswith(MANUAL)]
    for name in manual:
        handle.log(f"{name}: {MANUAL}")
    with connection() as conn:
        done = finish(conn, erasure, {**local, "integrations": providers}, manual=bool(manual))
    handle.progress(100)
    return done.public()


@job("consent.sync", schema=ConsentSyncPayload)
def consent_sync(lead_id: str) -> dict[str, Any]:
    """Bring the marketing list in line with the lead's consent as it is now (the last change wins)."""
    with connection() as conn:
        lead = load_lead(conn, str(lead_id))
    if lead is None or lead.erased or not lead.email:
        return {"lead_id": str(lead_id), "skipped": "no lead, erased, or no email"}
    marketing = integrations.first(EmailMarketing)
    if marketing is None:
        return {"lead_id": lead.id, "skipped": integrations.why_none(EmailMarketing)}
    status = marketing.set_subscription(lead.email, lead.has_consent)
    current_job().log(f"{marketing.name}: member {status}")
    return {"lead_id": lead.id, marketing.name: status}


@job("data.retention", schema=DataRetentionPayload)
def data_retention() -> dict[str, Any]:
    """Purge what is past its retention (``CEP_RETENTION_*``), in batches; what was purged, per kind."""
    handle, settings = current_job(), get_settings()
    # Its own autocommit connection: each batch is then a transaction of its own, not one long one.
    with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
        report = run_retention(conn, settings, on_batch=lambda kind, n: handle.log(f"{kind}: {n} purged"))
    handle.log("purged: " + ", ".join(f"{kind} {count}" for kind, count in report.items()))
    return {"purged": report}
