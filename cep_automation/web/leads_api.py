"""``POST /v1/leads/{lead_id}/status`` ``{"status": "enrolled" | "lost" | …}`` and ``GET /v1/leads/{lead_id}``
(the lead's sequences and timeline). An enrolled or lost lead leaves its sequences at once: the answer comes after
the pending steps are cancelled."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.db import connection
from cep_automation.sequences import lifecycle
from cep_automation.sequences.timeline import as_json, timeline
from cep_automation.web.errors import ApiError
from cep_automation.web.jobs_api import json_object


def lead_id_of(request: Request) -> str:
    raw = request.path_params["lead_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, f"no lead {raw!r} (lead ids are UUIDs)") from None


def parse_status(body: dict[str, object]) -> str:
    errors = [f"{name}: not a field" for name in sorted(set(body) - {"status"})]
    status = body.get("status")
    if status not in lifecycle.STATUSES:
        errors.append(f"status: must be one of {', '.join(lifecycle.STATUSES)}")
    if errors:
        raise ApiError(422, "invalid lead status", errors=errors)
    return str(status)


def _set_status(lead_id: str, status: str) -> Response:
    with connection() as conn, conn.transaction():
        row, cancelled = lifecycle.set_status(conn, lead_id, status)
    if row is None:
        raise ApiError(404, f"no lead {lead_id}")
    return JSONResponse({"lead_id": lead_id, "status": row["status"],
                         "changed_at": row["status_changed_at"].isoformat(), "steps_cancelled": cancelled})


async def status(request: Request) -> Response:
    lead_id = lead_id_of(request)
    new_status = parse_status(await json_object(request))
    return await run_in_threadpool(_set_status, lead_id, new_status)


def _show(lead_id: str) -> Response:
    with connection() as conn:
        found = timeline(conn, lead_id)
    if found is None:
        raise ApiError(404, f"no lead {lead_id}")
    return JSONResponse(as_json(found))


async def show(request: Request) -> Response:
    return await run_in_threadpool(_show, lead_id_of(request))
