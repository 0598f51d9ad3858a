"""Dead letters over JSON: ``GET /v1/dead-letters`` (filters as ``cep-automation dlq list``), ``GET …/{id}``,
``POST …/{id}/retry`` and ``POST …/{id}/discard`` with ``{"reason": …}``.

The operations are the CLI's and the dashboard's (:mod:`cep_automation.records.dead_letters`, and
:func:`cep_automation.runtime.enqueue.retry_dead_letter` for a retry); this module only maps them to HTTP.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.db import connection
from cep_automation.errors import CepError, DeadLetterNotFound, ServiceUnavailable
from cep_automation.records import dead_letters
from cep_automation.web.errors import ApiError
from cep_automation.web.jobs_api import json_object

MAX_LIMIT = 1000
MAX_REASON = 1000
NO_STORE = {"Cache-Control": "no-store"}


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its timestamps as ISO 8601 strings."""
    return {name: value.isoformat() if isinstance(value, dt.datetime) else value for name, value in row.items()}


def _integer(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(422, f"{name} must be an integer from {low} to {high}", errors=[f"{name}: got {raw!r}"])
    return int(raw)


def list_filters(query: Any) -> dict[str, Any]:
    """``status`` (dead, retried, discarded or all; dead by default), ``queue``, ``actor``, ``limit``, ``offset``."""
    status = query.get("status", "dead")
    if status not in (*dead_letters.STATUSES, "all"):
        raise ApiError(422, "unknown status", errors=[f"status: one of {', '.join((*dead_letters.STATUSES, 'all'))}"])
    return {"status": None if status == "all" else status, "queue": query.get("queue") or None,
            "actor": query.get("actor") or None, "limit": _integer(query, "limit", 50, 1, MAX_LIMIT),
            "offset": _integer(query, "offset", 0, 0, 10**9)}


def _database(operation: Any, *args: Any) -> Any:
    """``operation(conn, *args)`` in one transaction; a missing letter is 404, a refused operation 409."""
    try:
        with connection() as conn:
            return operation(conn, *args)
    except DeadLetterNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except (psycopg.OperationalError, redis.RedisError, ServiceUnavailable) as exc:
        raise ApiError(503, f"a service is unavailable: {type(exc).__name__}") from None
    except CepError as exc:
        raise ApiError(409, str(exc)) from None


async def list_letters(request: Request) -> Response:
    chosen = list_filters(request.query_params)
    rows = await run_in_threadpool(_database, lambda conn: dead_letters.list_letters(conn, **chosen))
    return JSONResponse({"dead_letters": [jsonable(r) for r in rows], **chosen}, headers=NO_STORE)


async def show(request: Request) -> Response:
    row = await run_in_threadpool(_database, dead_letters.get_letter, request.path_params["letter_id"])
    return JSONResponse(jsonable(row), headers=NO_STORE)


def _retry(conn: psycopg.Connection[Any], letter_id: int) -> str:
    from cep_automation.runtime.enqueue import retry_dead_letter

    return retry_dead_letter(conn, letter_id)


async def retry(request: Request) -> Response:
    letter_id = request.path_params["letter_id"]
    message_id = await run_in_threadpool(_database, _retry, letter_id)
    return JSONResponse({"id": letter_id, "status": "retried", "message_id": message_id}, status_code=202,
                        headers={"Location": f"/v1/jobs/{message_id}"})


async def discard(request: Request) -> Response:
    letter_id = request.path_params["letter_id"]
    reason = (await json_object(request)).get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise ApiError(422, "a reason is required to discard a dead letter",
                       errors=[f"reason: a non-empty string of at most {MAX_REASON} characters"])
    await run_in_threadpool(_database, dead_letters.discard, letter_id, reason)
    return JSONResponse({"id": letter_id, "status": "discarded", "discard_reason": reason.strip()})
