"""The dashboard's lead page ``/admin/leads/{id}``: the lead's sequences and timeline (``cep-automation leads
show`` on a page), with pause, resume and cancel (CSRF token, refused read-only)."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cep_automation.db import connection
from cep_automation.sequences import lifecycle
from cep_automation.sequences.calendar import marketing_hours
from cep_automation.sequences.timeline import timeline
from cep_automation.web.dead_letter_views import checked_form
from cep_automation.web.templating import flash, render

ACTIONS = {"pause": lifecycle.pause, "resume": lifecycle.resume, "cancel": lifecycle.cancel}


def lead_id_or_none(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _load(lead_id: str) -> dict[str, object] | None:
    with connection() as conn:
        return timeline(conn, lead_id)


async def page(request: Request) -> Response:
    lead_id = lead_id_or_none(request.path_params["lead_id"])
    found = await run_in_threadpool(_load, lead_id) if lead_id else None
    if found is None:
        return render(request, "error.html", 404, page="leads", title="No such lead",
                      message=f"No lead {request.path_params['lead_id']!r} (lead ids are UUIDs).")
    zone = marketing_hours().zone
    return render(request, "lead.html", page="leads", lead_id=lead_id, found=found, zone=str(zone))


def _act(action: str, lead_id: str) -> int:
    with connection() as conn, conn.transaction():
        return ACTIONS[action](conn, lead_id)


async def act(request: Request) -> Response:
    lead_id = lead_id_or_none(request.path_params["lead_id"])
    action = request.path_params["action"]
    form = await checked_form(request, page="leads")
    if isinstance(form, Response):
        return form
    if lead_id is None or action not in ACTIONS:
        return render(request, "error.html", 404, page="leads", title="Not found", message="No such lead or action.")
    count = await run_in_threadpool(_act, action, lead_id)
    said = {"pause": f"{count} sequence(s) paused", "resume": f"{count} sequence(s) resumed",
            "cancel": f"sequences ended, {count} pending step(s) cancelled"}[action]
    return flash(RedirectResponse(f"/admin/leads/{lead_id}", 303), said.capitalize() + ".")
