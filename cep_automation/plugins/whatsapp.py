"""Built-in WhatsApp Cloud API integration: template and text messages, under one global rate limit.

Every worker process shares ``WHATSAPP_RATE_LIMIT`` messages per second through Dramatiq's
:class:`~dramatiq.rate_limits.WindowRateLimiter` on Redis, so adding workers never pushes the business
number past its throughput (error 130429). Errors are classified by Graph ``code`` (api-contracts §3),
not by HTTP status: Meta sends the call-rate limit as 400 or 429 alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import requests

from cep_automation.errors import PermanentError, TransientError
from cep_automation.flow import Limit, hold
from cep_automation.plugins.graph import GraphError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration, retry_after_seconds
from cep_automation.plugins.kinds import Messaging
from cep_automation.records import confirmations
from cep_automation.redact import mask_phone
from cep_automation.settings import Settings

logger = logging.getLogger("cep_automation.plugins.whatsapp.WhatsApp")

# Retried codes and the back-off (s) used when the answer has no Retry-After; None = the job's own backoff.
TRANSIENT_CODES: dict[int, float | None] = {
    4: 60, 80007: 60,  # app / WABA call-rate limit
    130429: 3,  # per-number throughput: the next second usually has room
    131056: 60,  # pair limit (same recipient too often); other recipients are unaffected
    131000: None, 131016: None, 1: None, 2: None,  # unknown error / service unavailable
}
PERMANENT_CODES = frozenset({
    0, 190, 10, *range(200, 300),  # authentication, permissions
    100, 131008, 131009, 33,  # invalid or missing parameter, bad phone-number id
    132000, 132001, 132012, 132015, 132016,  # template problems
    131030, 133010, 368, 131031,  # recipient not allowed, number not registered, policy block, account locked
    131026, 131047, 131048, 131049,  # undeliverable, outside 24 h window, spam / marketing limits
})
HINTS = {
    0: "WHATSAPP_ACCESS_TOKEN is invalid or expired",
    190: "WHATSAPP_ACCESS_TOKEN is invalid or expired",
    131047: "more than 24 h since the user last wrote: send a template instead",
    131026: "the recipient cannot receive WhatsApp messages",
}


def classify(response: requests.Response) -> Exception | None:
    """TransientError or PermanentError for a Graph error object; None (decide by status) otherwise."""
    error = GraphError.parse(response)
    if error is None:
        return None
    what = error.describe("whatsapp", HINTS.get(error.code, ""))
    retry_after = retry_after_seconds(response)
    if error.code in TRANSIENT_CODES:
        return TransientError(what, retry_after=TRANSIENT_CODES[error.code] if retry_after is None else retry_after)
    if error.code in PERMANENT_CODES or not error.retryable_status:
        return PermanentError(what)
    return TransientError(what, retry_after=retry_after)


class WhatsApp(HttpIntegration, Messaging):
    """Sends WhatsApp messages from the business number ``WHATSAPP_PHONE_NUMBER_ID``.

    Parameters:
      settings: uses ``whatsapp_phone_number_id``, ``whatsapp_access_token``, ``whatsapp_base_url`` and
        ``whatsapp_rate_limit`` (messages per second, shared by all workers).
      timeout: (connect, read) seconds per request.
      rate_window_s, rate_wait_s, rate_burst: the limit's period (``whatsapp_rate_limit`` messages per
        ``rate_window_s``), how long a send waits for a slot before the job is postponed, and how many may go
        at once (default a tenth of the rate: sends are spaced evenly, never twice the rate across a second).
    Returns:
      the ``wamid`` of each accepted message (accepted, not yet delivered).
    Raises:
      TransientError: rate limits (4, 80007, 130429, 131056), 131000/131016/1/2, 5xx, timeouts.
      PermanentError: authentication, permission, parameter, template, recipient and policy errors.
    """

    name = "whatsapp"
    required_settings = ("whatsapp_phone_number_id", "whatsapp_access_token")
    base_url_setting = "whatsapp_base_url"

    def __init__(self, settings: Any, *, timeout: tuple[float, float] | None = None, rate_window_s: float = 1,
                 rate_wait_s: float = 1.0, rate_burst: int | None = None) -> None:
        super().__init__(settings, timeout=timeout)
        self.rate_window_s, self.rate_wait_s, self.rate_burst = rate_window_s, rate_wait_s, rate_burst

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.whatsapp_access_token.get_secret_value()}"}

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    confirms_sends = True

    def send_template(self, to: str, template: str, language: str, params: list[str], *,
                      reference: str | None = None) -> str:
        spec: dict[str, Any] = {"name": template, "language": {"code": language}}
        if params:
            spec["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]
        message: dict[str, Any] = {"type": "template", "template": spec}
        if reference:
            message["biz_opaque_callback_data"] = reference[:512]
        return self._send(to, message, f"template {template}")

    def confirmed(self, reference: str) -> str | None:
        """The ``wamid`` a status webhook reported for our ``biz_opaque_callback_data``."""
        entry = confirmations.confirmed(self.name, reference[:512])
        return str(entry["provider_id"]) if entry else None

    def send_text(self, to: str, body: str) -> str:
        return self._send(to, {"type": "text", "text": {"body": body, "preview_url": False}}, "text")

    def rate_limit(self) -> Limit:
        """Messages per phone number: shared by every worker process on every host (flow control)."""
        rate = self.settings.whatsapp_rate_limit
        return Limit("whatsapp", rate=rate, period_s=self.rate_window_s, wait_s=self.rate_wait_s,
                     burst=self.rate_burst or max(1, rate // 10))

    def _send(self, to: str, message: dict[str, Any], what: str) -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": recipient(to), **message}
        with hold(self.rate_limit(), self.settings.whatsapp_phone_number_id):
            pass  # a rate: the slot is the admission itself, nothing to hold during the call
        try:
            answer = self.client().post(f"/{self.settings.whatsapp_phone_number_id}/messages", json=body,
                                        repeatable=False).json()
        except ValueError:
            raise PermanentError("whatsapp: 2xx answer without JSON; the message may have gone") from None
        wamid = message_id(answer)
        logger.info("whatsapp: %s to %s accepted as %s", what, mask_phone(to), wamid)
        return wamid


def recipient(phone: str) -> str:
    """The number as WhatsApp wants it: country code and digits only (``+34 600…`` → ``34600…``)."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 8:
        raise PermanentError(f"whatsapp: {mask_phone(phone or '')} is not a phone number with country code")
    return digits


def message_id(answer: Any) -> str:
    """``messages[0].id`` of a send answer; PermanentError (never retried: it may have gone) if absent."""
    try:
        return str(answer["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise PermanentError("whatsapp: 2xx answer without messages[0].id; the message may have gone") from None


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(WhatsApp(settings))
