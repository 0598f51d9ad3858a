"""Upsert a lead as a Salesforce Lead with one PATCH keyed by an external id field (our lead id).

``PATCH /services/data/vXX.X/sobjects/Lead/<ExtIdField>/<lead id>`` creates the Lead (201) or updates
it (200; 204 on API v45.0 and older), so replays land on the same record. Salesforce's errors are
arrays of ``{message, errorCode, fields}``; :func:`classify` decides by ``errorCode`` where the
status alone would mislead (``REQUEST_LIMIT_EXCEEDED`` is a 403 but goes away by itself).
"""

from __future__ import annotations

from urllib.parse import quote

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
from cep_automation_salesforce.settings import ENV_PREFIX

# The org's allowance is counted over a rolling 24 hours: waiting minutes would not help.
LIMIT_RETRY_S = 3600.0
DEFAULT_COMPANY = "CEP lead"  # Lead requires Company; a student applying for a course has none
NO_LAST_NAME = "-"


def classify(response: requests.Response) -> Exception | None:
    """The error for a ``[{message, errorCode, fields}]`` body, or None to decide by status."""
    try:
        body = response.json()
    except ValueError:
        return None
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else None
    if first is None:
        return None
    code, status = str(first.get("errorCode")), response.status_code
    what = redact(f"salesforce: HTTP {status} {code}: {first.get('message')}")
    if code == "REQUEST_LIMIT_EXCEEDED":
        return TransientError(what, retry_after=retry_after_seconds(response) or LIMIT_RETRY_S)
    if status == 429 or status >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return PermanentError(what)  # INVALID_SESSION_ID, NOT_FOUND, REQUIRED_FIELD_MISSING, INVALID_FIELD, …


def lead_fields(contact: Contact) -> dict[str, str]:
    """The Lead's fields; LastName and Company are required, optional ones are sent only when known."""
    optional = {"FirstName": contact.first_name, "Email": contact.email.strip(), "Phone": contact.phone,
                "LeadSource": contact.source}
    return {"LastName": contact.last_name.strip() or NO_LAST_NAME,
            "Company": contact.merge_fields.get("COMPANY") or DEFAULT_COMPANY,
            **{name: value for name, value in optional.items() if value}}


def record_id(response: requests.Response, fallback: str) -> str:
    """``id`` (upsert answer) or ``Id`` (record read); an unreadable 2xx keeps the external id."""
    try:
        body = response.json()
    except ValueError:
        return fallback
    found = (body.get("id") or body.get("Id")) if isinstance(body, dict) else None
    return str(found or fallback)


class SalesforceCRM(HttpIntegration, CRM):
    """Creates or updates the Salesforce Lead whose external id field holds our lead id.

    Parameters:
      settings: a :class:`~cep_automation_salesforce.settings.SalesforceSettings`.
      timeout: (connect, read) seconds for each request.
    Raises:
      TransientError: timeouts, 5xx, 429, and 403 ``REQUEST_LIMIT_EXCEEDED`` (retried after an hour).
      PermanentError: a lead without id, 300 (several Leads share the id), 401 ``INVALID_SESSION_ID``,
        400 (bad field or value), 404 ``NOT_FOUND`` (e.g. no such external id field).
    """

    name = "salesforce"
    required_settings = ("instance_url", "token")
    settings_prefix = ENV_PREFIX
    base_url_setting = "instance_url"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token.get_secret_value()}"}

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def upsert_lead(self, contact: Contact) -> str:
        """PATCH the Lead by external id; return its Salesforce Id."""
        external_id = str(contact.external_id or "").strip()
        if not external_id:
            raise PermanentError("salesforce: the lead has no id to upsert by")
        path = self._lead_path(external_id)
        client = self.client()
        response = client.request("PATCH", path, json=lead_fields(contact), allow_redirects=False)
        if response.status_code == 204:  # v45.0 and older answer an update with no body
            response = client.get(path, params={"fields": "Id"}, allow_redirects=False)
        if response.status_code == 300:
            raise PermanentError(f"salesforce: several Leads have {self.settings.external_id_field}={external_id}; "
                                 "merge them in Salesforce, then retry the job")
        return record_id(response, external_id)

    def erase_contact(self, subject: DataSubject) -> str:
        """DELETE each Lead by external id (204; 404 ``NOT_FOUND``: none). Salesforce keeps deleted records in
        its Recycle Bin for 15 days before it purges them (docs/gdpr.md)."""
        deleted, client = 0, self.client()
        for lead_id in subject.lead_ids:
            try:
                client.request("DELETE", self._lead_path(lead_id), allow_redirects=False)
            except PermanentError as exc:
                if "NOT_FOUND" not in str(exc):
                    raise
                continue
            deleted += 1
        return f"{deleted} of {len(subject.lead_ids)} Lead(s) deleted (Recycle Bin, purged after 15 days)"

    def _lead_path(self, external_id: str) -> str:
        field = quote(self.settings.external_id_field, safe="")
        return f"/services/data/{self.settings.version_path}/sobjects/Lead/{field}/{quote(external_id, safe='')}"
