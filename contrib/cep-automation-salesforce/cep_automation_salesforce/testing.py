"""A fake Salesforce REST API for Lead upserts by external id, with Salesforce's answers and error arrays.

``PATCH /services/data/vXX.X/sobjects/Lead/<ExtIdField>/<value>`` answers **201**
``{id, success, errors, created: true}`` for a new Lead, **200** ``{…, created: false}`` for an
existing one (**204** with no body when the path's version is 45.0 or older), **300** with the
matching records' URLs when several Leads share the value, and errors as a JSON array
``[{message, errorCode, fields}]``: 400 ``REQUIRED_FIELD_MISSING``, 401 ``INVALID_SESSION_ID``,
403 ``REQUEST_LIMIT_EXCEEDED``, 404 ``NOT_FOUND``, 500/503. ``DELETE`` on the same path deletes the Lead
(**204**, or 404 ``NOT_FOUND``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from cep_automation.testing import FakeServer, Recorded, Reply

_LEAD = re.compile(r"^/services/data/v(\d+\.\d)/sobjects/Lead/([^/]+)/([^/]+)$")
REQUIRED = ("LastName", "Company")
LAST_204_VERSION = 45.0


def errors(error_code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """Salesforce's error body: a JSON array of ``{message, errorCode, fields}``."""
    return [{"message": message, "errorCode": error_code, "fields": fields or []}]


class FakeSalesforce(FakeServer):
    """Leads in memory (:attr:`leads`, by record Id); use :attr:`url` as ``SALESFORCE_INSTANCE_URL``.

    Parameters:
      token: the access token it accepts as ``Authorization: Bearer <token>``.
      external_id_fields: the Lead fields marked "External ID" in this org.
    """

    def __init__(self, token: str = "salesforce-token", external_id_fields: tuple[str, ...] = ("ExtId__c",)) -> None:
        super().__init__()
        self.token = token
        self.external_id_fields = external_id_fields
        self.leads: dict[str, dict[str, Any]] = {}

    def add_lead(self, field: str = "ExtId__c", value: str = "", **fields: Any) -> str:
        """Seed a Lead (seeding the same value twice makes the duplicates behind a 300)."""
        with self._lock:
            return self._insert({field: value, **fields})

    def find(self, field: str, value: str) -> list[dict[str, Any]]:
        return [lead for lead in self.leads.values() if str(lead.get(field)) == value]

    # -- scripted errors
    def exceed_limit(self) -> None:
        self.fail_next(403, errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))

    def expire_session(self) -> None:
        self.fail_next(401, errors("INVALID_SESSION_ID", "Session expired or invalid"))

    def fail_server(self, status: int = 503, times: int = 1) -> None:
        code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
        self.fail_next(status, errors(code, "An unexpected error occurred. Please try again."), times=times)

    def reject(self, error_code: str, message: str, fields: list[str] | None = None, status: int = 400) -> None:
        self.fail_next(status, errors(error_code, message, fields))

    # -- the API
    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, errors("INVALID_SESSION_ID", "Session expired or invalid"))
        match = _LEAD.match(request.path)
        if not match or request.method not in ("PATCH", "GET", "DELETE"):
            return Reply(404, errors("NOT_FOUND", "The requested resource does not exist"))
        version, field, value = float(match.group(1)), match.group(2), unquote(match.group(3))
        if field not in self.external_id_fields:
            message = f"Provided external ID field does not exist or is not accessible: {field}"
            return Reply(404, errors("NOT_FOUND", message))
        with self._lock:
            found = self.find(field, value)
            if len(found) > 1:
                base = f"/services/data/v{match.group(1)}/sobjects/Lead"
                return Reply(300, [f"{base}/{lead['Id']}" for lead in found])
            if request.method == "GET":
                return self._read(found)
            if request.method == "DELETE":
                return self._delete(found)
            update_only = request.query.get("updateOnly") == ["true"]
            return self._upsert(found, {**(request.json or {}), field: value}, version, update_only)

    def _read(self, found: list[dict[str, Any]]) -> Reply:
        if not found:
            return Reply(404, errors("NOT_FOUND", "The requested resource does not exist"))
        return Reply(200, {"attributes": {"type": "Lead"}, **found[0]})

    def _delete(self, found: list[dict[str, Any]]) -> Reply:
        """Delete by external id: 204 with no body; 404 ``NOT_FOUND`` when no Lead has that value."""
        if not found:
            return Reply(404, errors("NOT_FOUND", "The requested resource does not exist"))
        del self.leads[found[0]["Id"]]
        return Reply(204, b"")

    def _upsert(self, found: list[dict[str, Any]], fields: dict[str, Any], version: float, update_only: bool) -> Reply:
        if found:
            found[0].update(fields)
            if version <= LAST_204_VERSION:
                return Reply(204, b"")
            return Reply(200, {"id": found[0]["Id"], "success": True, "errors": [], "created": False})
        if update_only:
            return Reply(404, errors("NOT_FOUND", "The requested resource does not exist"))
        missing = [name for name in REQUIRED if not fields.get(name)]
        if missing:
            return Reply(400, errors("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                     missing))
        return Reply(201, {"id": self._insert(fields), "success": True, "errors": [], "created": True})

    def _insert(self, fields: dict[str, Any]) -> str:
        record_id = f"00Q{len(self.leads) + 1:015d}"
        self.leads[record_id] = {"Id": record_id, **fields}
        return record_id
