"""``sequence.step``: send one step of a lead's sequence, once, when its held job is released.

The step is decided again when it runs (:mod:`cep_automation.sequences.plan`): a lead who enrolled, withdrew
consent or was erased, a paused sequence or a stale copy of the job sends nothing. A step due outside marketing
hours moves to the next opening. The send goes through the effects ledger under the step's id, so a retry after
a failure, a crash or a duplicate delivery never sends it twice; a transient failure retries this step alone.
Steps of one lead run one at a time, in order (ordering key ``lead:<id>``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

from cep_automation.actors.leads import contact_of, run_with, send_whatsapp
from cep_automation.db import connection
from cep_automation.domain.leads import TELEMATICO, load_lead
from cep_automation.errors import PermanentError
from cep_automation.plugins.kinds import CRM, EmailMarketing, TransactionalEmail
from cep_automation.records import sequence_counts as counters
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job, is_last_attempt
from cep_automation.runtime.steps import StepRunner
from cep_automation.sequences import lifecycle, plan, store
from cep_automation.sequences.calendar import marketing_hours
from cep_automation.sequences.definition import Step, configured
from cep_automation.settings import get_settings


class SequenceStepPayload(BaseModel):
    lead_id: uuid.UUID
    step_id: uuid.UUID



def definition_of(row: dict[str, Any] | None) -> Step | None:
    if row is None or row["sequence"] not in configured():
        return None
    try:
        return configured()[row["sequence"]].step(row["name"])
    except KeyError:
        return None


@job(lifecycle.ACTOR, schema=SequenceStepPayload, ordering_key="lead:{lead_id}", audit_action="sequence.step",
     audit_entity=("lead", "lead_id"))
def sequence_step(lead_id: str, step_id: str) -> dict[str, Any]:
    """Run one step of a sequence, or say why not."""
    handle = current_job()
    step_id = str(step_id)
    with connection() as conn:
        row = store.step_to_run(conn, step_id)
    step = definition_of(row)
    decision = plan.plan(row, step, str(handle.message_id), marketing_hours(), dt.datetime.now(dt.UTC))
    if isinstance(decision, plan.Stale):
        return {"step_id": step_id, "skipped": decision.reason}
    assert row is not None
    if isinstance(decision, plan.Skip):
        finish(row, "skipped", decision.reason)
        return {"step_id": step_id, "status": "skipped", "reason": decision.reason}
    if isinstance(decision, plan.Defer):
        defer(row, decision.until)
        return {"step_id": step_id, "status": "pending", "moved_to": decision.until.isoformat()}
    assert step is not None
    return send(row, step, decision)


def send(row: dict[str, Any], step: Step, decision: plan.Send) -> dict[str, Any]:
    handle = current_job()
    steps = StepRunner(Ledger(f"sequence.step:{row['id']}"), handle)
    run_channel(steps, row, step, decision)
    try:
        outcomes = steps.finish()
    except Exception as exc:
        if isinstance(exc, PermanentError) or is_last_attempt():
            finish(row, "failed", str(exc))
        else:
            with connection() as conn:
                store.note_attempt(conn, row["id"], f"attempt failed, retrying: {exc}")
        raise
    sent = [outcome for outcome in outcomes.values() if outcome["status"] == "success"]
    if sent:
        finish(row, "sent", "; ".join(f"{name}: {o.get('detail', 'sent')}" for name, o in outcomes.items()))
        return {"step_id": row["id"], "status": "sent", "steps": outcomes}
    reason = "; ".join(str(o.get("detail", "")) for o in outcomes.values()) or "nothing to send"
    finish(row, "skipped", reason)
    return {"step_id": row["id"], "status": "skipped", "reason": reason, "steps": outcomes}


def run_channel(steps: StepRunner, row: dict[str, Any], step: Step, decision: plan.Send) -> None:
    """One send through the step's channel; several for a CRM task (one per enabled CRM)."""
    name, params = step.name, decision.params
    values = list(params.values()) if isinstance(params, dict) else list(params)
    if step.channel == "email":
        # Mandrill can neither confirm a send nor take an idempotency key: at most once (an attempt that died while
        # sending is not repeated; the timeline says it may have gone).
        merge = params if isinstance(params, dict) else {f"P{i}": v for i, v in enumerate(params, start=1)}
        metadata = {"lead_id": row["lead_id"], "sequence": row["sequence"], "step": name}
        run_with(steps, name, TransactionalEmail,
                 lambda m: m.send_template(str(step.template), row["email"], row["lead_name"], merge, metadata),
                 missing=None if row["email"] else "lead has no email", at_most_once=True)
    elif step.channel == "whatsapp":
        send_whatsapp(steps, name, row["phone"], str(step.template), values, missing="lead has no phone")
    elif step.channel == "advisor_notice":
        send_whatsapp(steps, name, row["advisor_phone"], str(step.template), values,
                      missing=f"campus {row['campus_name'] or TELEMATICO} has no advisor phone")
    elif step.channel == "mailchimp_tag":
        run_with(steps, name, EmailMarketing, lambda m: m.tag_contact(row["email"], [decision.text["tag"]]),
                 missing=None if row["email"] else "lead has no email")
    else:
        crm_tasks(steps, row, step, decision.text["title"])


def crm_tasks(steps: StepRunner, row: dict[str, Any], step: Step, title: str) -> None:
    if not get_settings().crm_enabled:
        steps.skip(step.name, "CRM_ENABLED is false")
        return
    crms = integrations.enabled(CRM)
    if not crms:
        steps.skip(step.name, integrations.why_none(CRM))
        return
    with connection() as conn:
        lead = load_lead(conn, row["lead_id"])
    if lead is None:
        steps.skip(step.name, "the lead no longer exists")
        return
    for crm in crms:
        if type(crm).create_task is CRM.create_task:
            steps.skip(f"{step.name}:{crm.name}", f"CRM {crm.name} does not take tasks")
            continue
        steps.run(f"{step.name}:{crm.name}", _task(crm, lead, title, f"{row['id']}:{crm.name}"))


def _task(crm: CRM, lead: Any, title: str, key: str) -> Any:
    return lambda: crm.create_task(contact_of(lead), title, key)


def finish(row: dict[str, Any], status: str, detail: str | None) -> None:
    with connection() as conn:
        if store.finish_step(conn, row["id"], status, detail):
            counters.count("steps", row["sequence"], status)


def defer(row: dict[str, Any], until: dt.datetime) -> None:
    """Outside marketing hours: hold the step again, under a new job, for the next opening."""
    message_id = str(uuid.uuid4())
    with connection() as conn, conn.transaction():
        store.move_step(conn, row["id"], message_id, until, "waiting for marketing hours")
        lifecycle.hold(conn, message_id, row["lead_id"], row["id"], until)
