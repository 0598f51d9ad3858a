"""``digest.daily``: at 08:00 in Madrid, yesterday's figures to each campus advisor and to marketing, by email.

periodiq's cron is UTC, so the job ticks at 06:00 and 07:00 UTC and acts on the tick that is 08:00 in Madrid
(07:00 UTC in winter, 06:00 in summer; :func:`cep_automation.domain.digest.due_day`); each tick is enqueued once
however many schedulers send it. Each recipient's email is one step of the ledger keyed by the day
(``digest.daily:<day>``): sent once per day whatever runs it — the tick, a retry, a manual ``day=`` — and a retry
sends only what failed. A Redis lock per day keeps two runs of one day from sending at the same moment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from dramatiq.middleware import CurrentMessage
from pydantic import BaseModel, ValidationError, field_validator

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.db.redis_client import get_redis, key
from cep_automation.domain import digest
from cep_automation.errors import PayloadError, Postponed
from cep_automation.plugins.kinds import TransactionalEmail
from cep_automation.queues import policy
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import JobHandle, current_job
from cep_automation.runtime.payload import field_errors
from cep_automation.runtime.steps import StepRunner
from cep_automation.settings import get_settings


class DigestPayload(BaseModel):
    """``day``: the day to report (a manual run); none means the last day that is over, or the tick's yesterday."""

    day: dt.date | None = None

    @field_validator("day")
    @classmethod
    def _over(cls, value: dt.date | None) -> dt.date | None:
        # A day not yet over would be sent half-counted, and then never again (once per day).
        if value is not None and value >= dt.datetime.now(dt.UTC).date():
            raise ValueError("must be a day that is over (before today, UTC)")
        return value


def tick_of_current_message() -> dt.datetime | None:
    """periodiq's tick of the message being processed; None when sent by hand or called directly."""
    message = CurrentMessage.get_current_message()
    tick = message.options.get(opt.SCHEDULED_AT) if message is not None else None
    if not tick:
        return None
    parsed = pendulum.parse(tick)
    return dt.datetime.fromtimestamp(parsed.timestamp(), dt.UTC) if isinstance(parsed, pendulum.DateTime) else None


def day_to_report(day: dt.date | None, tick: dt.datetime | None, now: dt.datetime) -> dt.date | None:
    """The given day; else, for a tick, its yesterday if it is the 08:00 tick in Madrid (None if not);
    else (a manual run) the last day that is over."""
    if day is not None:
        return day
    if tick is not None:
        return digest.due_day(tick)
    return digest.last_day_over(now)


def send_all(steps: StepRunner, figures: digest.DayFigures, recipients: list[digest.Recipient]) -> None:
    """One email per recipient, at once; each once per day (the ledger), a failure not stopping the others."""
    mail = integrations.first(TransactionalEmail)
    if mail is None:
        for recipient in recipients:
            steps.skip(recipient.step, integrations.why_none(TransactionalEmail))
        return
    template = get_settings().mandrill_digest_template
    steps.concurrently([_send(steps, mail, template, figures, r) for r in recipients])


def _send(steps: StepRunner, mail: TransactionalEmail, template: str, figures: digest.DayFigures,
          recipient: digest.Recipient) -> Any:
    content = figures.for_all() if recipient.campus_id is None else figures.for_campus(recipient.campus_id)
    metadata = {"digest_day": figures.day.isoformat(), "recipient": recipient.step}
    return lambda: steps.run(recipient.step, lambda: mail.send_template(
        template, recipient.email, recipient.name, content.merge_vars(), metadata))


def _lock(day: dt.date, owner: str) -> None:
    """Hold the day's lock (expires with the job's time limit); Postponed while another run holds it."""
    if not get_redis().set(key("lock", "digest.daily", day.isoformat()), owner, nx=True,
                           ex=policy("digest.daily").time_limit_s):
        raise Postponed(f"another digest.daily of {day} is running", retry_after=10)


def _unlock(day: dt.date, owner: str) -> None:
    client, name = get_redis(), key("lock", "digest.daily", day.isoformat())
    if client.get(name) == owner.encode():
        client.delete(name)


def run(day: dt.date, handle: JobHandle) -> dict[str, Any]:
    """Compute what is missing, read the day's figures once, send every recipient's email."""
    with connection() as conn:
        computed = digest.ensure_rollup(conn, day)
        figures = digest.read_day(conn, day)
        recipients = digest.recipients(conn, get_settings().cep_marketing_email)
    if computed:
        handle.log(f"the daily rollup of {day} was missing or incomplete: computed it")
    handle.progress(30)
    steps = StepRunner(Ledger(f"digest.daily:{day}"), handle)
    send_all(steps, figures, recipients)
    outcomes = steps.finish()
    handle.progress(100)
    return {"day": day.isoformat(), "rollup_computed": computed, "recipients": len(recipients), "steps": outcomes}


@job("digest.daily", schema=DigestPayload)
def digest_daily(day: str | None = None) -> dict[str, Any]:
    """Send the digest of ``day`` (default: the last day over) — on a tick, only at 08:00 in Madrid."""
    try:
        payload = DigestPayload(day=day)  # type: ignore[arg-type]  # pydantic parses the ISO date
    except ValidationError as exc:
        raise PayloadError("digest.daily", field_errors(exc)) from None
    tick = tick_of_current_message()
    target = day_to_report(payload.day, tick, dt.datetime.now(dt.UTC))
    if target is None:
        return {"skipped": f"tick {tick} is not {digest.SEND_HOUR:02d}:00 in Europe/Madrid"}
    handle = current_job()
    owner = handle.message_id or "direct-call"
    _lock(target, owner)
    try:
        return run(target, handle)
    finally:
        _unlock(target, owner)
