"""Mailchimp's audience webhook ``GET|POST /webhooks/mailchimp?key=SECRET``: an unsubscribe stops the person's
sequences.

Mailchimp does not sign its webhooks; it checks the URL with a GET when the webhook is created and then POSTs
form-encoded events (``type=unsubscribe&data[email]=…&data[list_id]=…``). The URL carries a secret of ours
(``MAILCHIMP_WEBHOOK_SECRET``, compared in constant time) instead. An ``unsubscribe`` or ``cleaned`` event for our
list withdraws the person's consent and cancels their pending steps; other events are acknowledged and ignored.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cep_automation.gdpr.identifiers import IdentifierError, normalize_email
from cep_automation.settings import Settings
from cep_automation.web.errors import ApiError
from cep_automation.web.unsubscribe import unsubscribe

logger = logging.getLogger("cep_automation.web.mailchimp_webhook")
STOPPING = ("unsubscribe", "cleaned")


def authorized(request: Request) -> None:
    settings: Settings = request.app.state.settings
    secret = settings.mailchimp_webhook_secret
    if secret is None:
        raise ApiError(404, "the Mailchimp webhook is off: set MAILCHIMP_WEBHOOK_SECRET to turn it on")
    given = request.query_params.get("key", "")
    if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        raise ApiError(403, "wrong or missing ?key= for the Mailchimp webhook")


async def endpoint(request: Request) -> Response:
    authorized(request)
    if request.method == "GET":
        return PlainTextResponse("ok")  # Mailchimp's check of the URL when the webhook is created
    # x-www-form-urlencoded, as Mailchimp posts; parsed here rather than through a multipart dependency
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    kind, email = str(form.get("type", "")), str(form.get("data[email]", ""))
    list_id = str(form.get("data[list_id]", ""))
    if kind not in STOPPING:
        return JSONResponse({"ignored": kind or "(no type)"})
    ours = request.app.state.settings.mailchimp_list_id
    if ours and list_id and list_id != ours:
        return JSONResponse({"ignored": f"list {list_id} is not ours"})
    try:
        address = normalize_email(email)
    except IdentifierError as exc:
        raise ApiError(422, f"data[email]: {exc}") from None
    done = await run_in_threadpool(unsubscribe, "email", address, f"mailchimp:{kind}")
    return JSONResponse({"type": kind, "leads": len(done.leads), "steps_cancelled": done.steps_cancelled})
