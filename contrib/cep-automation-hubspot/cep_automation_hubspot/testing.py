"""A fake HubSpot CRM v3 contacts API: search, create, PATCH, batch upsert, GDPR delete, and HubSpot's error bodies.

Like HubSpot, its search index lags behind writes: a contact created through the API is not found
by ``/search`` until :meth:`FakeHubSpot.reindex` (with ``search_lag=False`` it is found at once),
so a search-then-create client meets the **409** ``Contact already exists. Existing ID: <id>``.
Errors are ``{status: "error", message, correlationId, category}``; rate limits are 429 with
``errorType: RATE_LIMIT`` and a ``policyName``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from cep_automation.testing import FakeServer, Recorded, Reply

CONTACTS = "/crm/v3/objects/contacts"
_ONE = re.compile(rf"^{CONTACTS}/(\d+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RATE_LIMIT_MESSAGES = {
    "SECONDLY": "You have reached your secondly limit.",
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "DAILY": "You have reached your daily limit.",
}
AUTH_MESSAGES = {
    "INVALID_AUTHENTICATION": "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
    "EXPIRED_AUTHENTICATION": "The OAuth token used to make this call expired.",
}


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error document."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeHubSpot(FakeServer):
    """Contacts kept in memory (:attr:`contacts`, by id); use :attr:`url` as ``HUBSPOT_BASE_URL``.

    Parameters:
      token: the private-app token it accepts as ``Authorization: Bearer <token>``.
      search_lag: contacts created through the API stay invisible to search until :meth:`reindex`.
    """

    def __init__(self, token: str = "hubspot-token", *, search_lag: bool = True) -> None:
        super().__init__()
        self.token = token
        self.search_lag = search_lag
        self.contacts: dict[str, dict[str, Any]] = {}
        self._indexed: set[str] = set()

    # -- state helpers for tests
    def add_contact(self, email: str, *, indexed: bool = True, **properties: str) -> str:
        """Seed an existing contact (``indexed=False``: created so recently that search misses it)."""
        with self._lock:
            return self._insert({"email": email, **properties}, indexed=indexed)

    def reindex(self) -> None:
        """Let search catch up with every write."""
        with self._lock:
            self._indexed = set(self.contacts)

    def by_email(self, email: str) -> dict[str, Any] | None:
        found = [c for c in self.contacts.values() if c["properties"].get("email") == email.lower()]
        return found[0] if found else None

    # -- scripted errors
    def rate_limit(self, policy: str = "TEN_SECONDLY_ROLLING", retry_after: int | None = None, times: int = 1) -> None:
        body = {"status": "error", "message": RATE_LIMIT_MESSAGES[policy], "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()), "policyName": policy}
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.fail_next(429, body, headers=headers, times=times)

    def fail_auth(self, category: str = "EXPIRED_AUTHENTICATION") -> None:
        self.fail_next(401, error_body(AUTH_MESSAGES[category], category))

    def fail_server(self, status: int = 502, times: int = 1) -> None:
        self.fail_next(status, error_body("internal error", "INTERNAL_ERROR"), times=times)

    # -- the API
    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, error_body(AUTH_MESSAGES["INVALID_AUTHENTICATION"], "INVALID_AUTHENTICATION"))
        body = request.json or {}
        one = _ONE.match(request.path)
        with self._lock:
            if request.method == "POST" and request.path == f"{CONTACTS}/search":
                return self._search(body)
            if request.method == "POST" and request.path == f"{CONTACTS}/batch/upsert":
                return self._batch_upsert(body)
            if request.method == "POST" and request.path == f"{CONTACTS}/gdpr-delete":
                return self._gdpr_delete(body)
            if request.method == "POST" and request.path == CONTACTS:
                return self._create(body.get("properties") or {})
            if request.method in ("PATCH", "GET") and one:
                return self._one(request.method, one.group(1), body.get("properties") or {})
        return Reply(404, error_body(f"no route for {request.method} {request.path}", "OBJECT_NOT_FOUND"))

    def _gdpr_delete(self, body: dict[str, Any]) -> Reply:
        """``{objectId, idProperty: "email" | absent (a contact id)}`` → 204; the contact is gone for good."""
        if body.get("idProperty") == "email":
            found = self.by_email(str(body.get("objectId", "")))
        else:
            found = self.contacts.get(str(body.get("objectId", "")))
        if found is None:
            return Reply(404, error_body("resource not found", "OBJECT_NOT_FOUND"))
        del self.contacts[found["id"]]
        self._indexed.discard(found["id"])
        return Reply(204, b"")

    def _search(self, body: dict[str, Any]) -> Reply:
        groups = body.get("filterGroups") or []
        hits = [self.contacts[i] for i in sorted(self._indexed, key=int) if _matches(self.contacts[i], groups)]
        return Reply(200, {"total": len(hits), "results": hits[: int(body.get("limit") or 10)]})

    def _create(self, properties: dict[str, Any]) -> Reply:
        invalid = _invalid(properties)
        if invalid:
            return invalid
        existing = self.by_email(str(properties.get("email", "")))
        if existing:
            message = f"Contact already exists. Existing ID: {existing['id']}"
            return Reply(409, error_body(message, "CONFLICT"))
        contact_id = self._insert(properties, indexed=not self.search_lag)
        return Reply(201, self.contacts[contact_id])

    def _one(self, method: str, contact_id: str, properties: dict[str, Any]) -> Reply:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return Reply(404, error_body("resource not found", "OBJECT_NOT_FOUND"))
        if method == "PATCH":
            invalid = _invalid(properties)
            if invalid:
                return invalid
            _update(contact, properties)
        return Reply(200, contact)

    def _batch_upsert(self, body: dict[str, Any]) -> Reply:
        started, results = _now(), []
        for item in body.get("inputs") or []:
            properties = {"email": item.get("id"), **(item.get("properties") or {})}
            existing = self.by_email(str(item.get("id", "")))
            if existing:
                _update(existing, properties)
            contact = existing or self.contacts[self._insert(properties, indexed=not self.search_lag)]
            results.append({**contact, "new": existing is None})
        return Reply(200, {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()})

    def _insert(self, properties: dict[str, Any], *, indexed: bool) -> str:
        contact_id, now = str(101 + len(self.contacts)), _now()
        clean = {k: str(v) for k, v in properties.items()} | {"email": str(properties.get("email", "")).lower()}
        self.contacts[contact_id] = {"id": contact_id, "properties": {**clean, "hs_object_id": contact_id},
                                     "createdAt": now, "updatedAt": now, "archived": False}
        if indexed:
            self._indexed.add(contact_id)
        return contact_id


def _update(contact: dict[str, Any], properties: dict[str, Any]) -> None:
    contact["properties"].update({k: str(v) for k, v in properties.items()})
    contact["properties"]["email"] = contact["properties"].get("email", "").lower()
    contact["updatedAt"] = _now()


def _invalid(properties: dict[str, Any]) -> Reply | None:
    email = properties.get("email")
    if email is None or _EMAIL.match(str(email)):
        return None
    detail = json.dumps([{"isValid": False, "message": f"Email address {email} is invalid", "error": "INVALID_EMAIL",
                          "name": "email"}])
    return Reply(400, error_body(f"Property values were not valid: {detail}", "VALIDATION_ERROR"))


def _matches(contact: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    """filterGroups are ORed, the filters of a group ANDed; only the EQ operator is supported."""
    props = contact["properties"]

    def holds(f: dict[str, Any]) -> bool:
        value = str(props.get(f.get("propertyName"), ""))
        return f.get("operator") == "EQ" and value.lower() == str(f.get("value")).lower()

    return any(all(holds(f) for f in group.get("filters") or []) for group in groups)
