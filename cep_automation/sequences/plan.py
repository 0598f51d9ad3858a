"""What to do with a step when its job runs: send it, skip it (saying why), wait for marketing hours, or nothing.

Everything is decided again at run time from the step's row (:func:`store.step_to_run`), because days pass
between entering and sending: the lead may have enrolled, withdrawn consent or lost their phone number, an
operator may have paused the sequence, and the job may be a stale copy of a step that moved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cep_automation.domain.leads import TELEMATICO
from cep_automation.sequences.calendar import MarketingHours
from cep_automation.sequences.definition import PLACEHOLDER, Step
from cep_automation.sequences.lifecycle import EXIT_STATUSES, keeps_hours


@dataclass(frozen=True)
class Send:
    """Send the step: ``params`` rendered from the lead, course and run (a dict or a list, as declared)."""

    params: dict[str, str] | list[str]
    text: dict[str, str]  # tag and title, rendered


@dataclass(frozen=True)
class Skip:
    """The step is over without sending: ``reason`` goes on the lead's timeline."""

    reason: str


@dataclass(frozen=True)
class Defer:
    """Outside marketing hours: the step moves to ``until``."""

    until: dt.datetime


@dataclass(frozen=True)
class Stale:
    """Nothing to do under this job (the step ended, moved to another job, or its sequence is paused or over)."""

    reason: str


Plan = Send | Skip | Defer | Stale


def plan(row: dict[str, Any] | None, step: Step | None, message_id: str, hours: MarketingHours,
         now: dt.datetime) -> Plan:
    if row is None:
        return Stale("the step no longer exists")
    if row["status"] != "pending":
        return Stale(f"the step is already {row['status']}")
    if row["message_id"] != message_id:
        return Stale("the step is now carried by another job (resumed or moved to marketing hours)")
    if row["enrollment_status"] != "active":
        return Stale(f"the sequence is {row['enrollment_status']}")
    if step is None:
        return Skip(f"the step is no longer in sequence {row['sequence']} (CEP_SEQUENCES_FILE)")
    why_not = refusal(row, step, hours, now)
    if why_not:
        return Skip(why_not)
    if keeps_hours(step.channel) and not hours.is_open(now):
        return Defer(hours.next_open(now))
    fields = fields_of(row, hours, now)
    params: dict[str, str] | list[str] = (
        {name: render(text, fields) for name, text in step.params.items()} if isinstance(step.params, dict)
        else [render(text, fields) for text in step.params])
    text = {name: render(value, fields) for name, value in (("tag", step.tag), ("title", step.title)) if value}
    return Send(params, text)


def refusal(row: dict[str, Any], step: Step, hours: MarketingHours, now: dt.datetime) -> str | None:
    """Why the step must not be sent to this lead now, or None."""
    if row["erased_at"] is not None:
        return "the lead was erased under the GDPR"
    if row["lead_status"] in EXIT_STATUSES:
        return f"the lead is {row['lead_status']}"
    if step.needs_consent and (row["consent_at"] is None or row["consent_withdrawn_at"] is not None):
        return "no recorded consent (RGPD)"
    when = step.when
    if when.offer_types is not None and row["offer_type"] not in when.offer_types:
        return f"offer type {row['offer_type'] or 'unknown'} is not one of {', '.join(when.offer_types)}"
    campus = row["campus_name"] or TELEMATICO
    if when.campuses is not None and campus not in when.campuses:
        return f"campus {campus} is not one of {', '.join(when.campuses)}"
    for need in when.has:
        if not row[need]:
            return f"the lead has no {need}"
    if step.channel == "advisor_notice" and not row["advisor_phone"]:
        return f"campus {campus} has no advisor phone"
    if when.before_run_start:
        starts_on = row["starts_on"]
        if starts_on is None:
            return "the lead's course run has no start date"
        if starts_on <= now.astimezone(hours.zone).date():
            return f"the course run started on {starts_on:%Y-%m-%d}"
    return None


def fields_of(row: dict[str, Any], hours: MarketingHours, now: dt.datetime) -> dict[str, str]:
    starts_on: dt.date | None = row["starts_on"]
    name = (row["lead_name"] or "").strip()
    return {
        "lead.name": name,
        "lead.first_name": name.split()[0] if name else "",
        "course.title": row["course_title"] or "",
        "course.offer_type": row["offer_type"] or "",
        "campus.name": row["campus_name"] or TELEMATICO,
        "run.starts_on": f"{starts_on:%d/%m/%Y}" if starts_on else "",
        "run.days_to_start": str((starts_on - now.astimezone(hours.zone).date()).days) if starts_on else "",
    }


def render(text: str, fields: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: fields.get(match.group(1), ""), text)
