"""Job ingress for the CMS: ``POST /v1/jobs/{actor}`` enqueues, ``GET /v1/jobs/{message_id}`` reports.

The payload is the JSON body, validated against the actor's schema before anything is queued, so the
caller gets each bad field in a 422. An ``Idempotency-Key`` header is scoped to the actor (the same key
sent to two different jobs must not return the other job's message) and answers the first message
again, with ``deduplicated: true``, for as long as the enqueue window lasts.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

import dramatiq
import redis
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.errors import PayloadError, ServiceUnavailable
from cep_automation.records.job_state import get_job
from cep_automation.middleware.validation import validate
from cep_automation.redact import redact
from cep_automation.db.redis_client import get_redis
from cep_automation.db.redis_client import key as redis_key
from cep_automation.web.errors import ApiError

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces, like Stripe's keys
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def declared_actor(name: str) -> dramatiq.Actor:  # type: ignore[type-arg]
    from cep_automation.actors import broker

    if name not in broker.actors:
        raise ApiError(404, f"unknown job {name!r}", known_jobs=sorted(broker.actors))
    return broker.get_actor(name)


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


def enqueue_holder(idempotency_key: str | None) -> str | None:
    """The message that already holds this key's enqueue claim, if any."""
    if idempotency_key is None:
        return None
    holder = cast(bytes | None, get_redis().get(redis_key("idem", "sent", idempotency_key)))
    return holder.decode() if holder else None


def strict_errors(actor: Any, payload: dict[str, Any]) -> list[str]:
    """What JSON Schema would refuse but pydantic's lax mode accepts (``false`` for a number, ``0`` for a date)."""
    schema = actor.options.get("schema")
    try:
        if schema is not None:
            schema.model_validate_json(json.dumps(payload), strict=True)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()]
    return []


def send(actor: Any, payload: dict[str, Any], idempotency_key: str | None) -> Response:
    """Validate (as the document says, so strictly), then send; blocking (Redis), so run in the thread pool."""
    try:
        validate(actor, (), payload)
        errors = strict_errors(actor, payload)
    except PayloadError as exc:
        errors = exc.errors
    if errors:
        raise ApiError(422, f"invalid payload for {actor.actor_name}", errors=errors)
    options = {"idempotency_key": idempotency_key} if idempotency_key else {}
    try:
        holder = enqueue_holder(actor.idempotency_key(payload, dict(options)))
        message = actor.send_with_options(kwargs=payload, **options)
    except (redis.RedisError, ServiceUnavailable) as exc:
        raise ApiError(503, f"the queue is unavailable, nothing was enqueued: {type(exc).__name__}") from None
    body = {"message_id": message.message_id, "actor": actor.actor_name, "queue": actor.queue_name,
            "deduplicated": holder is not None and holder == message.message_id}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{message.message_id}"})


async def enqueue(request: Request) -> Response:
    actor = declared_actor(request.path_params["name"])
    payload = await json_object(request)
    idempotency_key = scoped_key(actor.actor_name, request.headers.get("idempotency-key"))
    return await run_in_threadpool(send, actor, payload, idempotency_key)


def allowed_methods(name: str) -> str:
    """``Allow`` for ``/v1/jobs/<name>``: a job name takes POST, anything else is a message id to GET."""
    from cep_automation.actors import broker

    return "POST" if name in broker.actors else "GET, HEAD"


async def dispatch(request: Request) -> Response:
    """One route for both operations, so a 405's ``Allow`` names the right method for this path."""
    if request.method == "POST":
        return await enqueue(request)
    if request.method in ("GET", "HEAD"):
        return await run_in_threadpool(job_status, request)
    raise ApiError(405, "Method Not Allowed", headers={"Allow": allowed_methods(request.path_params["name"])})


def job_status(request: Request) -> Response:
    """State, progress, log lines, result and error of one message (log and error redacted)."""
    message_id = request.path_params["name"]
    try:
        info = get_job(message_id) if MESSAGE_ID.match(message_id) else None
    except redis.RedisError as exc:
        raise ApiError(503, f"job state is unavailable: {type(exc).__name__}") from None
    if info is None:
        raise ApiError(404, f"no job {message_id!r} (unknown, or older than its retention)")
    data = info.asdict()
    data.update(log=[redact(line) for line in info.log], error=redact(info.error))
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
