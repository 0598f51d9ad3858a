"""Upsert a lead as a HubSpot contact: search by email, then PATCH the match or create a new one.

HubSpot's search lags behind writes by up to ~30 s, so a contact created moments ago (by us on a
previous attempt, or by a form) is not found and the create answers **409** ``Contact already
exists. Existing ID: 123``; :func:`classify` turns that into :class:`ContactExists` and the contact
is PATCHed instead. Replays are therefore safe: every path ends on the one contact with that email.
"""

from __future__ import annotations

import re

import requests

from cep_automation.plugins import (
    CRM,
    Contact,
    DataSubject,
    HttpClient,
    HttpIntegration,
    PermanentError,
    TransientError,
    redact,
    retry_after_seconds,
)
from cep_automation_hubspot.settings import ENV_PREFIX

CONTACTS = "/crm/v3/objects/contacts"
EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
# Seconds to wait when a 429 has no Retry-After: the burst windows are 1 s and 10 s; the daily one
# resets at midnight in the account's time zone, which we do not know, so try again in an hour.
POLICY_RETRY_S = {"SECONDLY": 10.0, "TEN_SECONDLY_ROLLING": 10.0, "DAILY": 3600.0}


class ContactExists(PermanentError):
    """The create answered 409: a contact with that email exists as ``contact_id``."""

    def __init__(self, contact_id: str, message: str) -> None:
        super().__init__(message)
        self.contact_id = contact_id


def classify(response: requests.Response) -> Exception | None:
    """HubSpot's ``{status: "error", message, category | errorType, policyName?}`` bodies as our errors."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status, message = response.status_code, str(body.get("message") or "")
    what = redact(f"hubspot: HTTP {status} {body.get('category') or body.get('errorType') or ''}: {message}")
    if status == 429 or body.get("errorType") == "RATE_LIMIT":
        waited = retry_after_seconds(response) or POLICY_RETRY_S.get(str(body.get("policyName")), 10.0)
        return TransientError(what, retry_after=waited)
    found = EXISTING_ID.search(message) if status == 409 else None
    if found:
        return ContactExists(found.group(1), what)
    if status >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return PermanentError(what)  # 400 VALIDATION_ERROR, 401 EXPIRED/INVALID_AUTHENTICATION, 403, 404


def contact_properties(contact: Contact) -> dict[str, str]:
    """HubSpot's property names; empty values are left out so they never blank what HubSpot has."""
    values = {"email": contact.email.strip().lower(), "firstname": contact.first_name,
              "lastname": contact.last_name, "phone": contact.phone}
    return {name: value for name, value in values.items() if value}


class HubSpotCRM(HttpIntegration, CRM):
    """Creates or updates the HubSpot contact with the lead's email.

    Parameters:
      settings: a :class:`~cep_automation_hubspot.settings.HubSpotSettings` (``token``, ``base_url``).
      timeout: (connect, read) seconds for each request.
    Raises:
      TransientError: timeouts, 5xx, and 429 (``Retry-After``, else by ``policyName``: 10 s for the
        secondly and ten-secondly limits, an hour for the daily one).
      PermanentError: a lead without email, 401 (expired or invalid token), 400 (invalid property values).
    """

    name = "hubspot"
    required_settings = ("token",)
    settings_prefix = ENV_PREFIX
    base_url_setting = "base_url"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token.get_secret_value()}"}

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def upsert_lead(self, contact: Contact) -> str:
        """Search by email, then PATCH or create (PATCH after a 409); return the contact id."""
        properties = contact_properties(contact)
        if "email" not in properties:
            raise PermanentError("hubspot: the lead has no email, and HubSpot contacts are matched by email")
        client = self.client()
        found = self._search(client, properties["email"])
        if found:
            return self._update(client, found, properties)
        try:
            return str(client.post(CONTACTS, json={"properties": properties}).json()["id"])
        except ContactExists as exists:  # search had not caught up with an earlier create
            return self._update(client, exists.contact_id, properties)

    def erase_contact(self, subject: DataSubject) -> str:
        """HubSpot's GDPR delete of each address (``POST …/contacts/gdpr-delete``, 204): the contact is deleted
        for good and the address blocked from coming back by forms. An address HubSpot has not (404) is fine."""
        deleted, client = 0, self.client()
        for email in subject.emails:
            try:
                client.post(f"{CONTACTS}/gdpr-delete", json={"objectId": email, "idProperty": "email"})
            except PermanentError as exc:
                if "HTTP 404" not in str(exc):
                    raise
                continue
            deleted += 1
        return f"{deleted} of {len(subject.emails)} contact(s) deleted under the GDPR"

    def _search(self, client: HttpClient, email: str) -> str | None:
        query = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                 "properties": ["email"], "limit": 1}
        results = client.post(f"{CONTACTS}/search", json=query).json().get("results") or []
        return str(results[0]["id"]) if results else None

    def _update(self, client: HttpClient, contact_id: str, properties: dict[str, str]) -> str:
        client.request("PATCH", f"{CONTACTS}/{contact_id}", json={"properties": properties})
        return contact_id
