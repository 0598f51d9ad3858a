"""Upsert a lead as a Zoho CRM Lead: ``POST /crm/<version>/Leads/upsert``, de-duplicated by Email.

Zoho answers per record (``data[0].code``), and does not document which HTTP status goes with a
failed record, so a record error is read from the body whether it came with a 2xx or a 4xx.
Access tokens expire after an hour; refreshing them is the operator's (or a token proxy's) job,
so ``INVALID_TOKEN`` is permanent: retrying with the same token cannot succeed.
"""

from __future__ import annotations

from typing import Any

import requests

from cep_automation.plugins import (
    CRM,
    Contact,
    DataSubject,
    HttpIntegration,
    PermanentError,
    TransientError,
    redact,
    retry_after_seconds,
)
from cep_automation_zoho.settings import ENV_PREFIX

# Zoho does not say how long to wait after TOO_MANY_REQUESTS; a minute clears its concurrency limits.
RATE_LIMIT_RETRY_S = 60.0
NO_LAST_NAME = "-"


def record_error(record: dict[str, Any], status: int) -> PermanentError:
    """A failed record (INVALID_DATA, MANDATORY_NOT_FOUND, DUPLICATE_DATA): the lead itself is wrong."""
    details = record.get("details")
    api_name = details.get("api_name") if isinstance(details, dict) else None
    field = f" ({api_name})" if api_name else ""
    return PermanentError(redact(f"zoho: HTTP {status} {record.get('code')}{field}: {record.get('message')}"))


def first_record(body: Any) -> dict[str, Any] | None:
    records = body.get("data") if isinstance(body, dict) else None
    return records[0] if isinstance(records, list) and records and isinstance(records[0], dict) else None


def classify(response: requests.Response) -> Exception | None:
    """Zoho's ``{code, details, message, status}`` bodies, for the request or for its one record."""
    try:
        body = response.json()
    except ValueError:
        return None
    status, record = response.status_code, first_record(body)
    if record is not None:
        return record_error(record, status)
    if not isinstance(body, dict) or "code" not in body:
        return None
    what = redact(f"zoho: HTTP {status} {body['code']}: {body.get('message')}")
    if status == 429 or body["code"] == "TOO_MANY_REQUESTS":
        return TransientError(what, retry_after=retry_after_seconds(response) or RATE_LIMIT_RETRY_S)
    if status >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return PermanentError(what)  # INVALID_TOKEN, AUTHENTICATION_FAILURE, OAUTH_SCOPE_MISMATCH, …


def lead_record(contact: Contact) -> dict[str, str]:
    """The Lead's fields; Last_Name is mandatory, the others are sent only when known."""
    optional = {"First_Name": contact.first_name, "Email": contact.email.strip(), "Phone": contact.phone,
                "Lead_Source": contact.source}
    return {"Last_Name": contact.last_name.strip() or NO_LAST_NAME,
            **{name: value for name, value in optional.items() if value}}


class ZohoCRM(HttpIntegration, CRM):
    """Creates or updates the Zoho Lead with the lead's email.

    Parameters:
      settings: a :class:`~cep_automation_zoho.settings.ZohoSettings` (``api_domain``, ``token``, ``api_version``).
      timeout: (connect, read) seconds for each request.
    Raises:
      TransientError: timeouts, 5xx, and 429 ``TOO_MANY_REQUESTS`` (``Retry-After``, else a minute).
      PermanentError: a lead without email; 401 ``INVALID_TOKEN``/``AUTHENTICATION_FAILURE``/
        ``OAUTH_SCOPE_MISMATCH``; a record refused as ``INVALID_DATA``, ``MANDATORY_NOT_FOUND`` or ``DUPLICATE_DATA``.
    """

    name = "zoho"
    required_settings = ("api_domain", "token")
    settings_prefix = ENV_PREFIX
    base_url_setting = "api_domain"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {self.settings.token.get_secret_value()}"}

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def upsert_lead(self, contact: Contact) -> str:
        """Upsert the one Lead; return its Zoho id (``details.id``)."""
        record = lead_record(contact)
        if "Email" not in record:
            # Without the duplicate-check field every replay would insert another Lead.
            raise PermanentError("zoho: the lead has no email, and Zoho Leads are de-duplicated by email")
        body = {"data": [record], "duplicate_check_fields": ["Email"]}
        response = self.client().post(f"/crm/{self.settings.api_version}/Leads/upsert", json=body)
        return record_id(response)


    def erase_contact(self, subject: DataSubject) -> str:
        """Find each address's Leads (``GET …/Leads/search?email=``; 204 when none) and delete them
        (``DELETE …/Leads?ids=``). Zoho keeps deleted records in its Recycle Bin for 60 days (docs/gdpr.md)."""
        ids = [lead_id for email in subject.emails for lead_id in self._lead_ids(email)]
        if not ids:
            return "no Leads with their address"
        response = self.client().request("DELETE", f"/crm/{self.settings.api_version}/Leads",
                                         params={"ids": ",".join(ids)})
        failed = [r for r in (response.json() or {}).get("data") or [] if r.get("code") != "SUCCESS"]
        if failed:
            raise record_error(failed[0], response.status_code)
        return f"{len(ids)} Lead(s) deleted (Recycle Bin, purged after 60 days)"

    def _lead_ids(self, email: str) -> list[str]:
        response = self.client().get(f"/crm/{self.settings.api_version}/Leads/search", params={"email": email})
        if response.status_code == 204 or not response.content:
            return []
        return [str(lead["id"]) for lead in (response.json() or {}).get("data") or []]


def record_id(response: requests.Response) -> str:
    """``details.id`` of a SUCCESS record; a 2xx carrying a failed record (207) is that record's error."""
    try:
        record = first_record(response.json())
    except ValueError:
        record = None
    if record is None:
        # The upsert is keyed by email, so sending it again is safe.
        raise TransientError(f"zoho: HTTP {response.status_code} without a per-record result")
    if record.get("code") != "SUCCESS":
        raise record_error(record, response.status_code)
    return str(record["details"]["id"])
