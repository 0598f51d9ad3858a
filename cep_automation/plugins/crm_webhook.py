"""Built-in generic CRM: POST each lead as JSON to a URL, signed so the receiver can trust it.

The receiver checks ``X-CEP-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body with the
shared secret (compared in constant time), and upserts by ``Idempotency-Key`` (our lead id), so a
retried delivery updates the same record instead of creating a second one.

Erasure (GDPR) is a signed ``DELETE`` to the same URL with ``{"external_ids", "emails", "phones"}``: the
receiver deletes every record with one of those keys and answers 200 (``{"erased": n}``) or 204; 404 means
it holds none of them; 405 or 501 means it cannot erase, which the erasure reports as "manual action needed".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests

from cep_automation.errors import PermanentError
from cep_automation.plugins.erasure import DataSubject, ErasureUnsupported
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration, short_body
from cep_automation.plugins.kinds import CRM, Contact
from cep_automation.settings import Settings

SIGNATURE_HEADER = "X-CEP-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-CEP-Event"  # absent: a lead; "task": a follow-up task for the lead's advisor


def sign(secret: str, raw: bytes) -> str:
    """The ``X-CEP-Signature`` value of a body: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def idempotency_key(contact: Contact) -> str:
    """Our lead id; a lead without one (never from ``lead.created``) is keyed by its email's hash."""
    if str(contact.external_id or ""):
        return str(contact.external_id)
    if not contact.email.strip():
        raise PermanentError("webhook: the lead has neither an id nor an email to key the upsert on")
    return "email-sha256-" + hashlib.sha256(contact.email.strip().lower().encode()).hexdigest()


def lead_body(contact: Contact, key: str) -> dict[str, Any]:
    """The JSON document the receiver gets (stable field names: receivers depend on them)."""
    return {
        "external_id": key,
        "email": contact.email.strip(),
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "source": contact.source,
        "tags": list(contact.tags),
        "fields": dict(contact.merge_fields),
    }


class Refused(PermanentError):
    """A 4xx (not 429) from the receiver, with its status: an erasure reads 404 and 405 differently."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def classify(response: requests.Response) -> Exception | None:
    """:class:`Refused` for a 4xx other than 429; the default (transient) for 429 and 5xx."""
    if 400 <= response.status_code < 500 and response.status_code != 429:
        return Refused(f"webhook: HTTP {response.status_code} {short_body(response)}", response.status_code)
    return None


class WebhookCRM(HttpIntegration, CRM):
    """Sends leads to any HTTP endpoint that upserts them (a small CRM bridge, Zapier, Make, …).

    Parameters:
      settings: uses ``crm_webhook_url`` (the full URL to POST to) and ``crm_webhook_secret``.
      timeout: (connect, read) seconds for each request.
    Raises:
      TransientError: timeouts, connection errors, 429 and 5xx (``retry_after`` from ``Retry-After``).
      PermanentError: any other 4xx (a bad signature is a 401/403: fix the secret, do not retry).
    """

    name = "webhook"
    required_settings = ("crm_webhook_url", "crm_webhook_secret")
    base_url_setting = "crm_webhook_url"

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def upsert_lead(self, contact: Contact) -> str:
        """POST the signed lead; return the receiver's ``id``, or our key if it answered none."""
        key = idempotency_key(contact)
        raw = json.dumps(lead_body(contact, key), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.settings.crm_webhook_secret.get_secret_value(), raw),
            IDEMPOTENCY_HEADER: key,
        }
        response = self.client().post(self.base_url, data=raw, headers=headers)
        return receiver_id(response.content, key)

    def create_task(self, contact: Contact, title: str, key: str) -> str:
        """POST the signed task (``X-CEP-Event: task``), keyed by ``key``; return the receiver's id or our key."""
        body = {"external_id": idempotency_key(contact), "task": {"key": key, "title": title}}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", EVENT_HEADER: "task", IDEMPOTENCY_HEADER: key,
                   SIGNATURE_HEADER: sign(self.settings.crm_webhook_secret.get_secret_value(), raw)}
        response = self.client().post(self.base_url, data=raw, headers=headers)
        return receiver_id(response.content, key)

    def erase_contact(self, subject: DataSubject) -> str:
        """DELETE, signed, every record keyed by the person's lead ids or emails (see the module docstring)."""
        keys = [*subject.lead_ids, *(idempotency_key(Contact(email=email)) for email in subject.emails)]
        body = {"external_ids": keys, "emails": list(subject.emails), "phones": list(subject.phones)}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(self.settings.crm_webhook_secret.get_secret_value(), raw)}
        try:
            response = self.client().request("DELETE", self.base_url, data=raw, headers=headers)
        except Refused as exc:
            if exc.status == 404:
                return "the receiver holds no record of them"
            if exc.status in (405, 501):
                raise ErasureUnsupported(f"webhook: the receiver does not implement erasure ({exc})") from None
            raise
        return f"the receiver erased their records (HTTP {response.status_code})"


def receiver_id(content: bytes, fallback: str) -> str:
    """``id`` from a JSON answer; any other answer (204, text, no id) means the receiver keeps our key."""
    try:
        answer = json.loads(content) if content else None
    except ValueError:
        return fallback
    found = answer.get("id") if isinstance(answer, dict) else None
    return str(found) if found not in (None, "") else fallback


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(WebhookCRM(settings))
