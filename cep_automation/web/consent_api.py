"""``POST /v1/leads/{lead_id}/consent`` ``{"state": "given" | "withdrawn", "source": …}``: record a change of
consent. A withdrawal stops marketing at once (it is committed before the answer); the marketing list follows
through the ``consent.sync`` job, whose message id the answer gives."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.gdpr.consent import STATES, LeadErased, LeadNotFound
from cep_automation.web.errors import ApiError
from cep_automation.web.jobs_api import json_object

MAX_SOURCE = 200


def parse(body: dict[str, Any]) -> tuple[str, str]:
    """(state, source); 422 naming each bad field."""
    errors = [f"{name}: not a field" for name in sorted(set(body) - {"state", "source"})]
    state, source = body.get("state"), body.get("source")
    if state not in STATES:
        errors.append(f"state: must be one of {', '.join(STATES)}")
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE:
        errors.append(f"source: required, where the change came from (1 to {MAX_SOURCE} characters)")
    if errors:
        raise ApiError(422, "invalid consent change", errors=errors)
    return str(state), str(source).strip()


def _record(lead_id: str, state: str, source: str) -> Response:
    from cep_automation.actors.gdpr import consent_sync
    from cep_automation.db import connection
    from cep_automation.gdpr import record_consent

    try:
        with connection() as conn:
            change = record_consent(conn, lead_id, state, source)
    except LeadNotFound:
        raise ApiError(404, f"no lead {lead_id}") from None
    except LeadErased:
        raise ApiError(410, f"lead {lead_id} was erased under the GDPR") from None
    message_id = consent_sync.send(lead_id=lead_id).message_id if change.has_email else None
    return JSONResponse({"lead_id": lead_id, "state": change.state, "source": change.source,
                         "recorded_at": change.recorded_at.isoformat(), "marketing_allowed": change.marketing_allowed,
                         "sync_message_id": message_id})


async def consent(request: Request) -> Response:
    lead_id = request.path_params["lead_id"]
    try:
        lead_id = str(uuid.UUID(lead_id))
    except ValueError:
        raise ApiError(404, f"no lead {lead_id!r} (lead ids are UUIDs)") from None
    state, source = parse(await json_object(request))
    return await run_in_threadpool(_record, lead_id, state, source)
