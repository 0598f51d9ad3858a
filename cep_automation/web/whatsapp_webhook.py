"""WhatsApp's webhook ``GET|POST /webhooks/whatsapp`` (api-contracts §3, signed as in §4): statuses of our
sends, and messages from people, of which "BAJA" or "STOP" unsubscribes the sender (web/unsubscribe.py).

Each status WhatsApp sends about one of our messages carries back the ``biz_opaque_callback_data`` we
sent it with; we keep (reference → ``wamid``, status) in :mod:`cep_automation.records.confirmations`, so a
job that died between WhatsApp accepting a message and the ledger recording it learns that the message
went, instead of sending it twice. Statuses may repeat or arrive out of order; any of them proves the send.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.gdpr.identifiers import IdentifierError, normalize_phone
from cep_automation.records import confirmations
from cep_automation.web.errors import ApiError
from cep_automation.web.unsubscribe import unsubscribe
from cep_automation.web.webhook import dicts, signed_body, verify

logger = logging.getLogger("cep_automation.web.whatsapp_webhook")
PROVIDER = "whatsapp"
STOP_WORDS = ("BAJA", "STOP")


def objects(body: Any, kind: str) -> Iterator[dict[str, Any]]:
    """Every object of ``value.<kind>[]`` in a ``whatsapp_business_account`` delivery: ``statuses`` (of our sends)
    or ``messages`` (a person wrote to us)."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        return
    for entry in dicts(body.get("entry")):
        for change in dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") == "messages" and isinstance(value, dict):
                yield from dicts(value.get(kind))


def stop_requests(messages: list[dict[str, Any]]) -> list[str]:
    """The normalized phones of those who wrote one of :data:`STOP_WORDS` (alone, any case, punctuation ignored)."""
    phones = []
    for message in messages:
        text = message.get("text") if message.get("type") == "text" else None
        body = text.get("body") if isinstance(text, dict) else None
        word = re.sub(r"[^\w]", "", str(body or "")).upper()
        if word in STOP_WORDS and isinstance(message.get("from"), str):
            try:
                phones.append(normalize_phone("+" + message["from"].lstrip("+")))
            except IdentifierError:
                logger.warning("WhatsApp message with an unusable sender number ignored")
    return sorted(set(phones))


def unsubscribe_senders(phones: list[str]) -> int:
    """Each sender leaves their sequences and withdraws marketing consent; the marketing list follows."""
    from cep_automation.actors.gdpr import consent_sync

    cancelled = 0
    for phone in phones:
        done = unsubscribe("phone", phone, "whatsapp:BAJA")
        cancelled += done.steps_cancelled
        for lead_id in done.with_email:
            consent_sync.send(lead_id=lead_id)
    return cancelled


def record_statuses(found: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"statuses": len(found), "confirmed": 0}
    for status in found:
        reference, wamid = status.get("biz_opaque_callback_data"), status.get("id")
        if isinstance(reference, str) and reference and isinstance(wamid, str) and wamid:
            confirmations.record(PROVIDER, reference, wamid, str(status.get("status", "")))
            counts["confirmed"] += 1
    return counts


async def endpoint(request: Request) -> Response:
    return await receive(request) if request.method == "POST" else await run_in_threadpool(verify, request)


async def receive(request: Request) -> Response:
    body = await signed_body(request)
    if isinstance(body, Response):
        return body
    try:
        counts = await run_in_threadpool(record_statuses, list(objects(body, "statuses")))
        stopping = stop_requests(list(objects(body, "messages")))
        if stopping:
            counts["unsubscribed"] = len(stopping)
            counts["steps_cancelled"] = await run_in_threadpool(unsubscribe_senders, stopping)
    except (redis.RedisError, psycopg.Error) as exc:  # WhatsApp retries a non-200: nothing is lost
        raise ApiError(503, f"the webhook cannot be recorded now: {type(exc).__name__}") from None
    logger.info("WhatsApp webhook: %(statuses)d status(es), %(confirmed)d with our reference", counts)
    return JSONResponse(counts)
