"""Entering and leaving sequences, and an operator's pause, resume and cancel — each in the caller's transaction.

Entering writes the enrollment, every step with its due time (marketing hours applied) and, for each pending step,
a job held in ``scheduled_jobs`` until it is due; ``schedules.release`` hands it to ``sequence.step`` then. Leaving
(the lead enrolled, was lost, unsubscribed, withdrew consent, was erased; an operator cancelled) ends the open
enrollments and cancels every pending step and its held job at once, in one transaction: a step whose job was
already released finds its step cancelled when it runs, and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from cep_automation.records import scheduled_jobs
from cep_automation.records import sequence_counts as counters
from cep_automation.sequences import store
from cep_automation.sequences.calendar import MarketingHours, marketing_hours
from cep_automation.sequences.definition import Sequence, Step, configured

ACTOR = "sequence.step"
QUEUE = "leads"
PASSED = dt.timedelta(hours=1)  # a step due longer ago than this when the lead enters is skipped, not sent late
STATUSES = ("new", "contacted", "interested", "enrolled", "lost")
EXIT_STATUSES = ("enrolled", "lost")  # a lead with one of these leaves its sequences
CAUSES = ("enrolled", "lost", "unsubscribed", "consent_withdrawn", "erased", "cancelled")


@dataclass(frozen=True)
class Entry:
    """What entering did: ``enrollment_id`` (None when the lead did not enter, ``reason`` says why)."""

    sequence: str
    enrollment_id: str | None
    reason: str | None = None
    pending: int = 0


def keeps_hours(channel: str) -> bool:
    """Every channel but a CRM task (the school's own tool, not a message) keeps to marketing hours."""
    return channel != "crm_task"


def in_hours(channel: str, when: dt.datetime, hours: MarketingHours) -> dt.datetime:
    """``when``, moved to the next opening of marketing hours if the channel keeps them."""
    return hours.next_open(when) if keeps_hours(channel) else when


def due_time(step: Step, base: dt.datetime, hours: MarketingHours) -> dt.datetime:
    """When a step falls due: its wait from the base, in marketing hours if its channel keeps them."""
    return in_hours(step.channel, step.wait.due(base, hours.zone), hours)


def base_of(sequence: Sequence, lead: dict[str, Any], now: dt.datetime,
            hours: MarketingHours) -> tuple[dt.datetime | None, str, str | None]:
    """(base instant, subject, why not) for a lead entering ``sequence``."""
    if sequence.base == "entry":
        return now, "", None
    starts_on: dt.date | None = lead["starts_on"]
    if starts_on is None:
        return None, "", "the lead asked about no course run with a start date"
    start = hours.local_at(starts_on, dt.time(0, 0))
    if start <= now:
        return None, "", f"its course run started on {starts_on:%Y-%m-%d}"
    return start, f"run:{lead['course_run_id']}", None


def enter(conn: psycopg.Connection[Any], lead_id: str, name: str, *, now: dt.datetime | None = None) -> Entry:
    """Put a lead in one sequence (see :func:`enter_all`)."""
    return enter_all(conn, lead_id, [name], now=now)[0]


def enter_all(conn: psycopg.Connection[Any], lead_id: str, names: list[str], *,
              now: dt.datetime | None = None) -> list[Entry]:
    """Put a lead in each sequence of ``names`` (once per sequence and subject), or say why it may not enter.

    ``lead.created`` pays for this on every lead: the lead is read once, and the steps, held jobs and counters of
    every sequence entered are written together, a round trip each.
    """
    now = now or dt.datetime.now(dt.UTC)
    hours = marketing_hours()
    lead = store.lead_for_entry(conn, lead_id)
    entries: list[Entry] = []
    steps: list[tuple[str, store.NewStep]] = []
    finished: list[str] = []  # enrollments with no step left to run
    counts: list[tuple[str, ...]] = []
    for name in names:
        sequence = configured()[name]
        base, subject, why_not = may_enter(sequence, lead, lead_id, now, hours)
        enrollment_id = store.insert_enrollment(conn, lead_id, name, subject, base) if base else None
        if base is None or enrollment_id is None:
            entries.append(Entry(name, None, why_not or "already in this sequence"))
            continue
        planned = plan_steps(sequence, base, hours, now)
        steps += [(enrollment_id, step) for step in planned]
        pending = sum(1 for step in planned if step.status == "pending")
        if not pending:
            finished.append(enrollment_id)
        counts += [("entries", name)] + [("steps", name, "skipped")] * (len(planned) - pending)
        entries.append(Entry(name, enrollment_id, None, pending))
    store.insert_steps(conn, lead_id, steps)
    scheduled_jobs.hold_many(conn, [(step.message_id, ACTOR, QUEUE, step_payload(lead_id, step.id), step.due_at)
                                    for _, step in steps if step.message_id is not None])
    if finished:
        conn.execute("UPDATE sequence_enrollments SET status = 'completed', ended_at = now() WHERE id = ANY(%s)",
                     (finished,))
    counters.count_many(counts)
    return entries


def may_enter(sequence: Sequence, lead: dict[str, Any] | None, lead_id: str, now: dt.datetime,
              hours: MarketingHours) -> tuple[dt.datetime | None, str, str | None]:
    """(base instant, subject, why not) for this lead entering ``sequence``: None and the reason if it may not."""
    if lead is None:
        return None, "", f"no lead {lead_id}"
    if lead["erased_at"] is not None:
        return None, "", "the lead was erased under the GDPR"
    if lead["status"] in EXIT_STATUSES:
        return None, "", f"the lead is {lead['status']}"
    consent = lead["consent_at"] is not None and lead["consent_withdrawn_at"] is None
    if not consent and any(step.needs_consent for step in sequence.steps):
        return None, "", "no recorded consent (RGPD)"
    return base_of(sequence, lead, now, hours)


def plan_steps(sequence: Sequence, base: dt.datetime, hours: MarketingHours, now: dt.datetime) -> list[store.NewStep]:
    """A new enrollment's steps: pending with their due time and message id, or skipped if already past."""
    steps = []
    for position, step in enumerate(sequence.steps, start=1):
        due = due_time(step, base, hours)
        if due < now - PASSED:
            steps.append(store.NewStep(str(uuid.uuid4()), position, step.name, step.channel, due, None, "skipped",
                                       "its time had passed when the lead entered"))
        else:
            steps.append(store.NewStep(str(uuid.uuid4()), position, step.name, step.channel, due, str(uuid.uuid4())))
    return steps


def step_payload(lead_id: str, step_id: str) -> dict[str, Any]:
    return {"args": [], "kwargs": {"lead_id": lead_id, "step_id": step_id}}


def hold(conn: psycopg.Connection[Any], message_id: str, lead_id: str, step_id: str, due: dt.datetime) -> None:
    """The held job that will run one step, under ``message_id`` (the step runs only under its current one)."""
    scheduled_jobs.hold(conn, message_id=message_id, actor=ACTOR, queue=QUEUE, payload=step_payload(lead_id, step_id),
                        options={}, run_at=due)


def leave(conn: psycopg.Connection[Any], lead_ids: list[str], cause: str, *, sequence: str | None = None,
          status: str = "exited") -> int:
    """End the leads' open enrollments for ``cause``; how many pending steps were cancelled."""
    if not lead_ids:
        return 0
    rows = store.end_enrollments(conn, lead_ids, status=status, cause=cause, sequence=sequence)
    cancelled = [row["message_id"] for row in rows if row["message_id"]]
    scheduled_jobs.cancel_many(conn, cancelled)
    ended = [row["sequence"] for row in rows if row["sequence"]]
    counters.count_many([("exits", name, cause) for name in ended])
    return len([row for row in rows if row["sequence"] is None])


def pause(conn: psycopg.Connection[Any], lead_id: str, sequence: str | None = None) -> int:
    """Pause a lead's active sequences: their held steps are cancelled until :func:`resume`. How many paused."""
    rows = store.set_paused(conn, lead_id, sequence, paused=True)
    scheduled_jobs.cancel_many(conn, [row["message_id"] for row in rows if row["message_id"]])
    return len({row["sequence"] for row in rows})


def resume(conn: psycopg.Connection[Any], lead_id: str, sequence: str | None = None, *,
           now: dt.datetime | None = None) -> int:
    """Resume paused sequences: each pending step is held again under a new id, at its time or, if that has
    passed, at the next opening of marketing hours. How many resumed."""
    now = now or dt.datetime.now(dt.UTC)
    hours = marketing_hours()
    rows = store.set_paused(conn, lead_id, sequence, paused=False)
    for row in rows:
        if row["step_id"] is None:
            continue
        due = in_hours(row["channel"], max(row["due_at"], now), hours)
        message_id = str(uuid.uuid4())
        store.move_step(conn, row["step_id"], message_id, due, "resumed")
        hold(conn, message_id, lead_id, row["step_id"], due)
    return len({row["sequence"] for row in rows})


def cancel(conn: psycopg.Connection[Any], lead_id: str, sequence: str | None = None) -> int:
    """An operator ends a lead's sequences; how many pending steps were cancelled."""
    return leave(conn, [lead_id], "cancelled", sequence=sequence)


def set_status(conn: psycopg.Connection[Any], lead_id: str, status: str) -> tuple[dict[str, Any] | None, int]:
    """Record the lead's status; an ``enrolled`` or ``lost`` lead leaves its sequences. (row, steps cancelled)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    row = store.set_lead_status(conn, lead_id, status)
    if row is None or status not in EXIT_STATUSES:
        return row, 0
    return row, leave(conn, [lead_id], status)
