"""A fake Zoho CRM ``Leads/upsert`` API with Zoho's per-record results and error bodies.

``POST /crm/<version>/Leads/upsert`` with ``{data: [...], duplicate_check_fields?}`` answers one
result per record in ``data[]``: ``{code: "SUCCESS", action: "insert" | "update", details: {id, …}}``
or ``{code: "INVALID_DATA" | "MANDATORY_NOT_FOUND" | "DUPLICATE_DATA", details: {api_name,
json_path}, status: "error"}``. Whole-request errors are ``{code, details, message, status:
"error"}``: 401 ``INVALID_TOKEN`` / ``AUTHENTICATION_FAILURE`` / ``OAUTH_SCOPE_MISMATCH``, 429
``TOO_MANY_REQUESTS``. Zoho does not document the HTTP status of each mix of results; this fake
answers 201 when all were inserted, 200 when all succeeded, 207 when mixed and 400 when all failed.
``GET /crm/<version>/Leads/search?email=`` (200, or 204 with no body) and ``DELETE /crm/<version>/Leads?ids=``
(one ``record deleted`` result per id) serve erasure.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cep_automation.testing import FakeServer, Recorded, Reply

_UPSERT = re.compile(r"^/crm/(v\d+)/Leads/upsert$")
_LEADS = re.compile(r"^/crm/(v\d+)/Leads$")
_SEARCH = re.compile(r"^/crm/(v\d+)/Leads/search$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
AUTH_MESSAGES = {
    "INVALID_TOKEN": "invalid oauth token",
    "AUTHENTICATION_FAILURE": "Authentication failed",
    "OAUTH_SCOPE_MISMATCH": "invalid oauth scope to access this URL",
}
OWNER = {"name": "CEP Automation", "id": "5725767000000411001"}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Zoho's error document, for a whole request or for one record."""
    return {"code": code, "details": details or {}, "message": message, "status": "error"}


class FakeZoho(FakeServer):
    """Leads in memory (:attr:`leads`, by id); use :attr:`url` as ``ZOHO_API_DOMAIN``.

    Parameters:
      token: the access token it accepts as ``Authorization: Zoho-oauthtoken <token>``.
    """

    def __init__(self, token: str = "zoho-token") -> None:
        super().__init__()
        self.token = token
        self.leads: dict[str, dict[str, Any]] = {}

    def find(self, field: str, value: str) -> dict[str, Any] | None:
        hits = [lead for lead in self.leads.values() if str(lead.get(field, "")).lower() == str(value).lower()]
        return hits[0] if hits else None

    # -- scripted errors
    def fail_auth(self, code: str = "INVALID_TOKEN") -> None:
        self.fail_next(401, error_body(code, AUTH_MESSAGES[code]))

    def rate_limit(self, retry_after: int | None = None, times: int = 1) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        message = "Too many requests are made. Please try again after some time."
        self.fail_next(429, error_body("TOO_MANY_REQUESTS", message), headers=headers, times=times)

    def fail_server(self, status: int = 500, times: int = 1) -> None:
        self.fail_next(status, error_body("INTERNAL_ERROR", "Internal Server Error"), times=times)

    def reject_record(self, code: str, api_name: str = "Email", message: str = "") -> None:
        """Answer the next upsert with one failed record (``DUPLICATE_DATA``, ``INVALID_DATA``, …)."""
        details = {"api_name": api_name, "json_path": f"$.data[0].{api_name}"}
        self.fail_next(400, {"data": [error_body(code, message or code.lower().replace("_", " "), details)]})

    # -- the API
    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Zoho-oauthtoken {self.token}":
            return Reply(401, error_body("INVALID_TOKEN", AUTH_MESSAGES["INVALID_TOKEN"]))
        if request.method == "GET" and _SEARCH.match(request.path):
            return self._search(request.query)
        if request.method == "DELETE" and _LEADS.match(request.path):
            return self._delete(request.query)
        if request.method != "POST" or not _UPSERT.match(request.path):
            return Reply(404, error_body("INVALID_URL_PATTERN", "Please check if the URL trying to access is correct"))
        body = request.json if isinstance(request.json, dict) else {}
        records = body.get("data")
        if not isinstance(records, list) or not records:
            return Reply(400, error_body("INVALID_DATA", "invalid data", {"api_name": "data", "json_path": "$.data"}))
        keys = body.get("duplicate_check_fields") or ["Email"]
        with self._lock:
            results = [self._upsert(i, record, keys) for i, record in enumerate(records)]
        return Reply(_status(results), {"data": results})

    def _search(self, query: dict[str, list[str]]) -> Reply:
        """``?email=`` → 200 ``{data, info}``, or 204 with no body when nothing matches (as Zoho answers)."""
        email = (query.get("email") or [""])[0]
        with self._lock:
            hits = [lead for lead in self.leads.values() if str(lead.get("Email", "")).lower() == email.lower()]
        if not hits:
            return Reply(204, b"")
        return Reply(200, {"data": hits, "info": {"per_page": 200, "count": len(hits), "page": 1,
                                                   "more_records": False}})

    def _delete(self, query: dict[str, list[str]]) -> Reply:
        """``?ids=a,b`` → one result per id: ``SUCCESS`` / ``record deleted``, or ``INVALID_DATA`` for an unknown id."""
        ids = [i for i in (query.get("ids") or [""])[0].split(",") if i]
        if not ids:
            return Reply(400, error_body("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                                         {"param": "ids"}))
        results = []
        with self._lock:
            for lead_id in ids:
                if self.leads.pop(lead_id, None) is None:
                    results.append(error_body("INVALID_DATA", "the id given seems to be invalid", {"id": lead_id}))
                else:
                    results.append({"code": "SUCCESS", "details": {"id": lead_id}, "message": "record deleted",
                                    "status": "success"})
        return Reply(200, {"data": results})

    def _upsert(self, index: int, record: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        problem = _invalid(index, record)
        if problem:
            return problem
        matched, lead = self._match(record, keys)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        if lead is not None:
            lead.update(record, Modified_Time=now)
        else:
            lead_id = str(5725767000000500001 + len(self.leads))
            lead = {"id": lead_id, **record, "Created_Time": now, "Modified_Time": now}
            self.leads[lead["id"]] = lead
        details = {"id": lead["id"], "Created_Time": lead["Created_Time"], "Modified_Time": now,
                   "Created_By": OWNER, "Modified_By": OWNER}
        return {"code": "SUCCESS", "duplicate_field": matched, "action": "update" if matched else "insert",
                "details": details, "message": "record updated" if matched else "record added", "status": "success"}

    def _match(self, record: dict[str, Any], keys: list[str]) -> tuple[str | None, dict[str, Any] | None]:
        """The first duplicate-check field whose value an existing Lead has, and that Lead."""
        for key in keys:
            lead = self.find(key, record[key]) if record.get(key) else None
            if lead is not None:
                return key, lead
        return None, None


def _invalid(index: int, record: dict[str, Any]) -> dict[str, Any] | None:
    if not record.get("Last_Name"):
        details = {"api_name": "Last_Name", "json_path": f"$.data[{index}].Last_Name"}
        return error_body("MANDATORY_NOT_FOUND", "required field not found", details)
    if record.get("Email") and not _EMAIL.match(str(record["Email"])):
        details = {"api_name": "Email", "json_path": f"$.data[{index}].Email", "expected_data_type": "email"}
        return error_body("INVALID_DATA", "invalid data", details)
    return None


def _status(results: list[dict[str, Any]]) -> int:
    ok = [r for r in results if r["status"] == "success"]
    if len(ok) < len(results):
        return 207 if ok else 400
    return 201 if all(r["action"] == "insert" for r in ok) else 200
