"""Job ingress for the CMS: ``POST /v1/jobs/{actor}`` enqueues, ``GET /v1/jobs/{message_id}`` reports.

The payload is the JSON body, validated against the actor's schema before anything is queued, so the
caller gets each bad field in a 422. An ``Idempotency-Key`` header is scoped to the actor (the same key
sent to two different jobs must not return the other job's message) and answers the first message
again, with ``deduplicated: true``, for as long as the enqueue window lasts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.errors import (
    PayloadError,
    PayloadTooLarge,
    QueueFull,
    ScheduleError,
    ServiceUnavailable,
    UnknownJob,
)
from cep_automation.records.job_state import get_job
from cep_automation.redact import redact
from cep_automation.runtime.actor import CepActor
from cep_automation.runtime.enqueue import actor_named, job_names
from cep_automation.runtime.enqueue import enqueue as enqueue_job
from cep_automation.web import scheduling_api
from cep_automation.web.errors import ApiError

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces, like Stripe's keys
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def declared_actor(name: str) -> CepActor:
    """The job named in the path; 404 with the known jobs otherwise."""
    try:
        return actor_named(name)
    except UnknownJob:
        raise ApiError(404, f"unknown job {name!r}", known_jobs=job_names()) from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(text: str) -> float | int:
    """JSON Schema counts ``3.0`` as an integer; so does the ingress (pydantic's strict mode would not)."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 400 if it is not JSON, 422 if it is JSON but not an object."""
    raw = await request.body()
    if not raw.strip():
        return {}  # no body: every field takes its default
    try:
        payload = json.loads(raw, parse_constant=_no_constants, parse_float=_number)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "the payload must be a JSON object", errors=[f"payload: got {type(payload).__name__}"])
    return payload


def scoped_key(actor: str, header: str | None) -> str | None:
    if header is None:
        return None
    if not IDEMPOTENCY_KEY.match(header):
        raise ApiError(400, "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces")
    return f"api:{actor}:{header}"


def send(actor: CepActor, payload: dict[str, Any], idempotency_key: str | None,
         timing: dict[str, Any] | None = None) -> Response:
    """Validate (as the document says, so strictly) and enqueue; blocking (Redis), so run in the thread pool.

    202 when accepted; 429 with ``Retry-After`` when accepted but deferred (the queue is past its soft limit:
    slow down); 503 with ``Retry-After`` when the queue is full, 413 when the payload is too large (nothing
    enqueued); 400 for a bad timing (``ScheduleError``).
    """
    options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
    try:
        enqueued = enqueue_job(actor, payload, strict=True, **options, **(timing or {}))
    except PayloadError as exc:
        raise ApiError(422, f"invalid payload for {actor.actor_name}", errors=exc.errors) from None
    except PayloadTooLarge as exc:
        raise ApiError(413, str(exc), size=exc.size, limit=exc.limit) from None
    except ScheduleError as exc:
        raise ApiError(400, str(exc)) from None
    except QueueFull as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": str(exc.retry_after)}, queue=exc.queue,
                       depth=exc.depth, limit=exc.limit) from None
    except (redis.RedisError, ServiceUnavailable) as exc:
        raise ApiError(503, f"the queue is unavailable, nothing was enqueued: {type(exc).__name__}") from None
    body = {"message_id": enqueued.message_id, "actor": actor.actor_name, "queue": actor.queue_name,
            "deduplicated": enqueued.duplicate}
    headers = {"Location": f"/v1/jobs/{enqueued.message_id}"}
    if enqueued.held and enqueued.run_at is not None:
        body.update(scheduled=True, run_at=enqueued.run_at.isoformat())
    if enqueued.retry_after_s is not None:  # accepted, but the queue is past its soft limit: slow down
        body.update(deferred_s=enqueued.deferred_ms / 1000,
                    error=f"queue {actor.queue_name!r} is busy: accepted, deferred; slow down")
        return JSONResponse(body, status_code=429, headers={**headers, "Retry-After": str(enqueued.retry_after_s)})
    return JSONResponse(body, status_code=202, headers=headers)


async def enqueue(request: Request) -> Response:
    actor = declared_actor(request.path_params["name"])
    timing = scheduling_api.timing_options(request)
    payload = await json_object(request)
    idempotency_key = scoped_key(actor.actor_name, request.headers.get("idempotency-key"))
    return await run_in_threadpool(send, actor, payload, idempotency_key, timing)


def allowed_methods(name: str) -> str:
    """``Allow`` for ``/v1/jobs/<name>``: a job name takes POST, anything else is a message id to GET."""
    return "POST" if name in job_names() else "GET, HEAD, DELETE"


async def dispatch(request: Request) -> Response:
    """One route for both operations, so a 405's ``Allow`` names the right method for this path."""
    if request.method == "POST":
        return await enqueue(request)
    if request.method in ("GET", "HEAD"):
        from cep_automation.web import job_wait

        if MESSAGE_ID.match(request.path_params["name"]):
            await job_wait.until_ended(request.path_params["name"], request.query_params.get("wait"))
        return await run_in_threadpool(job_status, request)
    if request.method == "DELETE" and request.path_params["name"] not in job_names():
        return await run_in_threadpool(scheduling_api.cancel, request)
    raise ApiError(405, "Method Not Allowed", headers={"Allow": allowed_methods(request.path_params["name"])})


def job_status(request: Request) -> Response:
    """State, progress, log lines, result and error of one message (log and error redacted)."""
    message_id = request.path_params["name"]
    try:
        info = get_job(message_id) if MESSAGE_ID.match(message_id) else None
    except redis.RedisError as exc:
        raise ApiError(503, f"job state is unavailable: {type(exc).__name__}") from None
    if info is None:
        held = scheduling_api.scheduled_status(message_id) if MESSAGE_ID.match(message_id) else None
        if held is not None:
            return JSONResponse(held, headers={"Cache-Control": "no-store"})
        raise ApiError(404, f"no job {message_id!r} (unknown, or older than its retention)")
    data = info.asdict()
    data.update(log=[redact(line) for line in info.log], error=redact(info.error))
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
