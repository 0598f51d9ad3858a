"""Dashboard actions on jobs: clean (completed jobs older than N hours) and retry from a job's page.

A retry is the dead letter's retry (the job must be in the dead letters, still ``dead``), so it goes through
the one enqueue path as from ``cep-automation dlq retry``. Clean deletes job records from Redis
(:func:`cep_automation.records.job_state.clean`). Both need the CSRF token and are refused read-only.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cep_automation.db import connection
from cep_automation.records import job_state
from cep_automation.web.dead_letter_views import checked_form, retry_letters
from cep_automation.web.jobs_api import MESSAGE_ID
from cep_automation.web.templating import flash

CLEAN_DEFAULT_HOURS = 1
CLEAN_MAX_HOURS = 24 * 7


def clean_hours(form: dict[str, list[str]]) -> float | None:
    """The form's ``older_than_hours`` (0 to a week), or None when it is not such a number."""
    raw = (form.get("older_than_hours") or [str(CLEAN_DEFAULT_HOURS)])[0].strip()
    try:
        hours = float(raw)
    except ValueError:
        return None
    return hours if 0 <= hours <= CLEAN_MAX_HOURS else None


async def clean(request: Request) -> Response:
    form = await checked_form(request, page="jobs")
    if isinstance(form, Response):
        return form
    hours = clean_hours(form)
    if hours is None:
        notice = f"Not cleaned: give a number of hours from 0 to {CLEAN_MAX_HOURS}."
    else:
        count = await run_in_threadpool(job_state.clean, "completed", hours * 3600)
        notice = f"Removed {count} completed job(s) older than {hours:g} h (their audit history remains)."
    return flash(RedirectResponse("/admin/jobs", 303), notice)


def letter_of(message_id: str) -> int | None:
    """The id of the job's dead letter still waiting for a decision, if it has one."""
    with connection() as conn:
        row = conn.execute("SELECT id FROM dead_letters WHERE message_id = %s AND status = 'dead'",
                           (message_id,)).fetchone()
    return row["id"] if row else None


async def retry(request: Request) -> Response:
    form = await checked_form(request, page="jobs")
    if isinstance(form, Response):
        return form
    message_id = request.path_params["message_id"]
    letter_id = await run_in_threadpool(letter_of, message_id) if MESSAGE_ID.match(message_id) else None
    if letter_id is None:
        return flash(RedirectResponse(f"/admin/jobs/{message_id}", 303),
                     "Not retried: only a job in the dead letters (not yet retried or discarded) can be retried.")
    retried, failed = await run_in_threadpool(retry_letters, [letter_id])
    if not retried:
        return flash(RedirectResponse(f"/admin/jobs/{message_id}", 303), f"Not retried: {failed[letter_id]}")
    return flash(RedirectResponse(f"/admin/jobs/{retried[0]}", 303), f"Retried {message_id} as this job.")
