"""GDPR routes for the CMS and the DPO's tools: ``POST /v1/gdpr/erasures`` starts an erasure (202 with the
job's message id), ``GET /v1/gdpr/subjects?email=…`` answers an access request with everything we hold."""

from __future__ import annotations

from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.errors import ServiceUnavailable
from cep_automation.gdpr.identifiers import KINDS, IdentifierError
from cep_automation.web.errors import ApiError
from cep_automation.web.jobs_api import json_object


def one_identifier(values: dict[str, Any]) -> tuple[str, str]:
    """The one of email, phone or lead_id given (as a string); 422 for none, several or a non-string."""
    given = [(kind, values[kind]) for kind in KINDS if values.get(kind) not in (None, "")]
    unknown = sorted(set(values) - set(KINDS))
    if unknown or len(given) != 1 or not isinstance(given[0][1], str):
        errors = [f"{name}: not a field" for name in unknown] or ["give exactly one of email, phone or lead_id, "
                                                                  "as a string"]
        raise ApiError(422, "name the person by exactly one of email, phone or lead_id", errors=errors)
    return given[0]


def _erase(kind: str, value: str) -> Response:
    from cep_automation.actors.gdpr import request_erasure

    try:
        request = request_erasure(kind, value, via="api")
    except IdentifierError as exc:
        raise ApiError(422, "invalid identifier", errors=[str(exc)]) from None
    except (redis.RedisError, ServiceUnavailable) as exc:
        raise ApiError(503, f"the erasure could not be queued: {type(exc).__name__}") from None
    body = {"message_id": request.message_id, "erasure_id": request.erasure_id, "actor": "gdpr.erase",
            "deduplicated": request.deduplicated}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{request.message_id}"})


async def erasures(request: Request) -> Response:
    kind, value = one_identifier(await json_object(request))
    return await run_in_threadpool(_erase, kind, value)


def _export(kind: str, value: str) -> Response:
    from cep_automation.db import connection
    from cep_automation.gdpr import export_subject

    try:
        with connection() as conn:
            document = export_subject(conn, kind, value)
    except IdentifierError as exc:
        raise ApiError(422, "invalid identifier", errors=[str(exc)]) from None
    return JSONResponse(document, headers={"Cache-Control": "no-store"})


async def subjects(request: Request) -> Response:
    kind, value = one_identifier(dict(request.query_params))
    return await run_in_threadpool(_export, kind, value)
