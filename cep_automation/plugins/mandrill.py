"""Built-in Mailchimp Transactional (Mandrill) integration: send one templated email.

Mandrill authenticates with a ``key`` in the JSON body (HttpClient never logs bodies), answers a
rejected recipient with HTTP 200, and sends most errors as HTTP 500 whatever their cause, so
:func:`classify` decides by the error's ``name``, not by the status.
"""

from __future__ import annotations

from typing import Any

import requests

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration, retry_after_seconds
from cep_automation.plugins.kinds import TransactionalEmail
from cep_automation.redact import mask_email, redact
from cep_automation.settings import Settings

PERMANENT_NAMES = frozenset({"Invalid_Key", "ValidationError", "Unknown_Template", "Unknown_Subaccount",
                             "PaymentRequired"})
TRANSIENT_NAMES = frozenset({"GeneralError", "RequestLimitExceeded"})
DELIVERED = ("sent", "queued")  # queued (e.g. sending-backlogged) still goes out: not worth a retry


def classify(response: requests.Response) -> Exception | None:
    """The error for a ``{status: "error", code, name, message}`` body, or None to decide by status."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("status") != "error":
        return None
    name = str(body.get("name"))
    what = redact(f"mandrill: {name} (code {body.get('code')}, HTTP {response.status_code}): {body.get('message')}")
    if name in PERMANENT_NAMES:
        return PermanentError(what)
    if name in TRANSIENT_NAMES:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return None  # an undocumented name: 5xx is retried, 4xx is not


class Mandrill(HttpIntegration, TransactionalEmail):
    """Sends Mandrill templates to one recipient.

    Parameters:
      settings: uses ``mailchimp_transactional_key``, ``mandrill_base_url`` and ``mandrill_from_email``.
      timeout: (connect, read) seconds for each request.
    Raises:
      PermanentError: a rejected or invalid recipient (with the ``reject_reason``), or an error named
        Invalid_Key, ValidationError, Unknown_Template, Unknown_Subaccount or PaymentRequired.
      TransientError: timeouts, GeneralError, RequestLimitExceeded and other 5xx or 429.
    """

    name = "mandrill"
    required_settings = ("mailchimp_transactional_key",)
    base_url_setting = "mandrill_base_url"

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def send_template(self, template: str, to_email: str, to_name: str, merge_vars: dict[str, str],
                      metadata: dict[str, str]) -> str:
        """POST ``/messages/send-template``; return the message ``_id`` when sent or queued."""
        body = {
            "key": self.settings.mailchimp_transactional_key.get_secret_value(),
            "template_name": template,
            "template_content": [],
            "message": self._message(to_email, to_name, merge_vars, metadata),
        }
        try:
            results = self.client().post("/messages/send-template", json=body, repeatable=False).json()
        except ValueError:
            raise PermanentError("mandrill: send-template answered 2xx without JSON; the email may have gone") from None
        return delivered_id(results, to_email)

    def _message(self, to_email: str, to_name: str, merge_vars: dict[str, str],
                 metadata: dict[str, str]) -> dict[str, Any]:
        recipient = {"email": to_email.strip(), "type": "to", **({"name": to_name} if to_name else {})}
        return {
            "from_email": self.settings.mandrill_from_email,
            "to": [recipient],
            "global_merge_vars": [{"name": name, "content": value} for name, value in merge_vars.items()],
            "metadata": metadata,
        }


def delivered_id(results: Any, to_email: str) -> str:
    """The ``_id`` of the recipient's entry if sent or queued; PermanentError if rejected or invalid."""
    entries = results if isinstance(results, list) else []
    wanted = to_email.strip().lower()
    mine = [e for e in entries if isinstance(e, dict) and str(e.get("email", "")).lower() == wanted]
    entry = (mine or entries or [None])[0]
    if not isinstance(entry, dict):
        # Retrying could send the email twice (Mandrill has no idempotency key), so do not.
        raise PermanentError(f"mandrill: unexpected send-template answer: {redact(str(results)[:200])}")
    status = entry.get("status")
    if status in DELIVERED:
        return str(entry["_id"])
    reason = entry.get("reject_reason") or "no reason given"
    raise PermanentError(f"mandrill: {mask_email(to_email.strip())} {status}: {reason}")


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(Mandrill(settings))
