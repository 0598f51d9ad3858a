"""The Meta Lead Ads webhook ``GET|POST /webhooks/meta/leads`` (api-contracts §4).

GET answers Meta's verification handshake. POST checks ``X-Hub-Signature-256`` — an HMAC-SHA256 of the
raw body bytes with the app secret, compared in constant time — and enqueues one ``meta.leadgen`` job
per ``leadgen`` change, keyed ``meta.leadgen:<leadgen id>`` so Meta's retries create nothing new. It
answers at once: fetching the lead from the Graph API happens in the job, with retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cep_automation.errors import PayloadError, ServiceUnavailable
from cep_automation.runtime.enqueue import enqueue
from cep_automation.settings import Settings
from cep_automation.web.errors import ApiError, json_error
from cep_automation.web.jobs_api import declared_actor

logger = logging.getLogger("cep_automation.web.webhook")
ACTOR = "meta.leadgen"


def secret_of(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def signature_ok(raw: bytes, header: str | None, app_secret: str) -> bool:
    """``sha256=<hex>`` over the exact bytes received: re-serialised JSON would not match Meta's."""
    expected = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected.encode(), header.strip().encode())


def verify(request: Request) -> Response:
    """The subscription handshake: echo ``hub.challenge`` when the verify token matches."""
    settings: Settings = request.app.state.settings
    expected = secret_of(settings.meta_verify_token)
    query = request.query_params
    given = query.get("hub.verify_token", "")
    if not expected or query.get("hub.mode") != "subscribe" or not hmac.compare_digest(given.encode(),
                                                                                        expected.encode()):
        return json_error(403, "verification failed: wrong hub.mode or hub.verify_token")
    return PlainTextResponse(query.get("hub.challenge", ""))


def meta_id(value: Any) -> str | None:
    """Ids arrive as strings or numbers (the docs' samples use numbers): keep both, as strings."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def unix_time(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list; anything else (a signed but odd body) counts as empty."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def leadgen_changes(body: Any) -> Iterator[dict[str, Any]]:
    """The ``meta.leadgen`` payload of each ``leadgen`` change of a page delivery."""
    if not isinstance(body, dict) or body.get("object") != "page":
        return
    for entry in dicts(body.get("entry")):
        for change in dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "leadgen" or not isinstance(value, dict):
                continue
            payload = {"leadgen_id": meta_id(value.get("leadgen_id")),
                       "page_id": meta_id(value.get("page_id")) or meta_id(entry.get("id")),
                       "form_id": meta_id(value.get("form_id")),
                       "created_time": unix_time(value.get("created_time")) or unix_time(entry.get("time"))}
            if meta_id(value.get("ad_id")):
                payload["ad_id"] = meta_id(value.get("ad_id"))
            yield payload


def enqueue_changes(changes: list[dict[str, Any]]) -> dict[str, int]:
    """Send each change once per leadgen id; an invalid change is logged and dropped, not retried by Meta."""
    actor = declared_actor(ACTOR)
    counts = {"received": len(changes), "enqueued": 0, "duplicates": 0, "rejected": 0}
    for payload in changes:
        try:
            enqueued = enqueue(actor, payload, idempotency_key=f"{ACTOR}:{payload['leadgen_id']}")
        except PayloadError as exc:
            logger.warning("Meta webhook: leadgen change %r dropped: %s", payload["leadgen_id"], "; ".join(exc.errors))
            counts["rejected"] += 1
            continue
        counts["duplicates" if enqueued.duplicate else "enqueued"] += 1
    return counts


async def endpoint(request: Request) -> Response:
    return await receive(request) if request.method == "POST" else await run_in_threadpool(verify, request)


async def signed_body(request: Request) -> Any:
    """The JSON body of a delivery signed by Meta (``X-Hub-Signature-256`` with the app secret), or the error
    response to send instead: 503 without a secret, 403 for a bad signature, 400 for a body that is not JSON."""
    settings: Settings = request.app.state.settings
    app_secret = secret_of(settings.meta_app_secret)
    if not app_secret:
        return json_error(503, "META_APP_SECRET is not set: deliveries cannot be verified")
    raw = await request.body()
    if not signature_ok(raw, request.headers.get("x-hub-signature-256"), app_secret):
        return json_error(403, "invalid or missing X-Hub-Signature-256")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return json_error(400, "the body is not valid JSON")


async def receive(request: Request) -> Response:
    body = await signed_body(request)
    if isinstance(body, Response):
        return body
    try:
        counts = await run_in_threadpool(enqueue_changes, list(leadgen_changes(body)))
    except (redis.RedisError, ServiceUnavailable) as exc:  # Meta retries a non-200: nothing is lost
        raise ApiError(503, f"the queue is unavailable: {type(exc).__name__}") from None
    logger.info("Meta webhook: %(received)d leadgen change(s), %(enqueued)d enqueued, "
                "%(duplicates)d duplicate(s), %(rejected)d rejected", counts)
    return JSONResponse(counts)
