"""A fake Mailchimp Marketing API v3: members upserted by subscriber hash, tags, and the documented errors.

Point ``MAILCHIMP_BASE_URL`` at :attr:`FakeMailchimp.base_url`. Members are kept in memory
(:attr:`FakeMailchimp.members`, by list and hash) so tests can assert the audience's state.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

VERSION = "3.0"
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
LIST_MERGE_TAGS = ("FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY")
ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"
# Status and a typical detail for each documented title (api-contracts.md §1).
PROBLEMS: dict[str, tuple[int, str]] = {
    "Invalid Resource": (400, "Your merge fields were invalid."),
    "Member Exists": (400, "{email} is already a list member. Use PUT to insert or update list members."),
    "Member In Compliance State": (400, "{email} is in a compliance state due to unsubscribe, bounce, or compliance "
                                        "review and cannot be subscribed."),
    "Forgotten Email Not Subscribed": (400, "{email} was permanently deleted and cannot be re-imported. "
                                            "The contact must re-subscribe to get back on the list."),
    "API Key Invalid": (401, "Your API key may be invalid, or you've attempted to access the wrong datacenter."),
    "Forbidden": (403, "You don't have permission to access this resource."),
    "Resource Not Found": (404, "The requested resource could not be found."),
    # The live 429 title is unconfirmed; the error glossary calls it TooManyRequests.
    "Too Many Requests": (429, "You have exceeded the limit of 10 simultaneous connections."),
    "Internal Server Error": (500, "An unexpected internal error has occurred. Please contact Support for more "
                                   "information."),
    "Compliance Related": (503, "This method has been disabled."),
}
_MEMBER_PATH = re.compile(rf"^/{re.escape(VERSION)}/lists/([^/]+)/members/([^/]+)(/tags|/actions/delete-permanent)?$")


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()  # noqa: S324 (Mailchimp's id, not security)


def problem(title: str, detail: str | None = None, *, email: str = "", errors: list[dict[str, str]] | None = None,
            status: int | None = None, headers: dict[str, str] | None = None) -> Reply:
    """An ``application/problem+json`` reply as Mailchimp sends it (``instance`` = ``X-Request-Id``)."""
    known_status, known_detail = PROBLEMS.get(title, (status or 400, ""))
    instance = str(uuid.uuid4())
    body: dict[str, Any] = {"type": ERROR_DOCS, "title": title, "status": status or known_status,
                            "detail": (detail or known_detail).replace("{email}", email or "ana@example.com"),
                            "instance": instance}
    if errors is not None:
        body["errors"] = errors
    return Reply(body["status"], body, {"Content-Type": "application/problem+json; charset=utf-8",
                                        "X-Request-Id": instance, **(headers or {})})


class FakeMailchimp(FakeServer):
    """Mailchimp Marketing v3 on 127.0.0.1: ``PUT …/members/{hash}``, ``POST …/members/{hash}/tags`` and
    ``POST …/members/{hash}/actions/delete-permanent``.

    Parameters:
      api_key: the key clients must send as the HTTP Basic password (else 401 API Key Invalid).
      lists: the audience ids that exist; any other gives 404 Resource Not Found.
    """

    def __init__(self, api_key: str, lists: tuple[str, ...] = ("list1",)) -> None:
        super().__init__()
        self.api_key = api_key
        self.members: dict[str, dict[str, dict[str, Any]]] = {list_id: {} for list_id in lists}
        self.forgotten: set[str] = set()

    @property
    def base_url(self) -> str:
        """The value for ``MAILCHIMP_BASE_URL``."""
        return f"{self.url}/{VERSION}"

    def fail_with(self, title: str, detail: str | None = None, *, errors: list[dict[str, str]] | None = None,
                  retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with the documented problem for ``title`` (see PROBLEMS)."""
        if title == "Invalid Resource" and errors is None and detail is None:
            errors = [{"field": "LTV", "message": "Please enter a number"}]
        reply = problem(title, detail, errors=errors,
                        headers={"Retry-After": str(retry_after)} if retry_after is not None else None)
        self.fail_next(reply.status, reply.body, reply.headers, times=times)

    def forget(self, email: str) -> None:
        """Permanently delete ``email`` (GDPR): upserting it then gives Forgotten Email Not Subscribed."""
        self.forgotten.add(subscriber_hash(email))

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        """The stored member for ``email`` (hashed as Mailchimp does), or None."""
        return self.members.get(list_id, {}).get(subscriber_hash(email.strip()))

    def handle(self, request: Recorded) -> Reply:
        if not self._authorized(request):
            return problem("API Key Invalid")
        route = _MEMBER_PATH.match(request.path)
        if route is None:
            return problem("Resource Not Found")
        list_id, member_id, tags = route.groups()
        if list_id not in self.members:
            return problem("Resource Not Found", "The requested resource could not be found.")
        if tags == "/actions/delete-permanent" and request.method == "POST":
            return self._delete_permanent(list_id, member_id)
        if tags and request.method == "POST":
            return self._tag(list_id, member_id, request.json or {})
        if not tags and request.method == "PUT":
            return self._upsert(list_id, member_id, request.json or {})
        if not tags and request.method == "PATCH":
            if member_id not in self.members[list_id]:
                return problem("Resource Not Found")
            return self._upsert(list_id, member_id, request.json or {})
        return problem("Method Not Allowed", "The requested method and resource are not compatible.", status=405)

    def _authorized(self, request: Recorded) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        _user, _, password = base64.b64decode(credentials).decode(errors="replace").partition(":")
        return password == self.api_key

    def _upsert(self, list_id: str, member_id: str, body: dict[str, Any]) -> Reply:
        existing = self.members[list_id].get(member_id)
        email = str(body.get("email_address") or (existing or {}).get("email_address") or "")
        invalid = self._invalid(existing, body)
        if invalid:
            return problem("Invalid Resource", "The resource submitted could not be validated. For field-specific "
                           "details, see the 'errors' array.", errors=invalid)
        if member_id in self.forgotten:
            return problem("Forgotten Email Not Subscribed", email=email)
        if existing and body.get("status") == "subscribed" and existing["status"] in ("unsubscribed", "cleaned"):
            return problem("Member In Compliance State", email=email)
        member = existing or self._new_member(list_id, member_id, email, body)
        member["email_address"] = email
        member["status"] = body.get("status") or member["status"]
        member["merge_fields"].update(body.get("merge_fields") or {})
        member["last_changed"] = _now()
        self.members[list_id][member_id] = member
        return Reply(200, member)

    @staticmethod
    def _invalid(existing: dict[str, Any] | None, body: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        if existing is None and not body.get("email_address"):
            errors.append({"field": "email_address", "message": "This value should not be blank."})
        for field in ("status", "status_if_new"):
            if field in body and body[field] not in STATUSES:
                errors.append({"field": field, "message": "Invalid status value."})
        return errors

    def _new_member(self, list_id: str, member_id: str, email: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": member_id, "email_address": email, "unique_email_id": uuid.uuid4().hex[:10],
            "web_id": len(self.members[list_id]) + 1000, "email_type": "html",
            "status": body.get("status") or body.get("status_if_new") or "subscribed",
            "merge_fields": {tag: "" for tag in LIST_MERGE_TAGS},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0}, "ip_opt": "127.0.0.1", "timestamp_opt": _now(),
            "member_rating": 2, "last_changed": _now(), "language": "", "vip": False,
            "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": ""},
            "source": "API - Generic", "tags_count": 0, "tags": [], "list_id": list_id, "_links": [],
        }

    def _delete_permanent(self, list_id: str, member_id: str) -> Reply:
        """GDPR delete: the member is gone and its address can never be re-imported (204, empty body)."""
        if self.members[list_id].pop(member_id, None) is None:
            return problem("Resource Not Found")
        self.forgotten.add(member_id)
        return Reply(204, b"")

    def _tag(self, list_id: str, member_id: str, body: dict[str, Any]) -> Reply:
        member = self.members[list_id].get(member_id)
        if member is None:
            return problem("Resource Not Found")
        if not isinstance(body.get("tags"), list):
            return problem("Invalid Resource", "The resource submitted could not be validated.",
                           errors=[{"field": "tags", "message": "Required"}])
        for tag in body["tags"]:
            names = [t["name"] for t in member["tags"]]
            if tag.get("status") == "active" and tag["name"] not in names:
                member["tags"].append({"id": len(names) + 1, "name": tag["name"]})
            elif tag.get("status") == "inactive":
                member["tags"] = [t for t in member["tags"] if t["name"] != tag["name"]]
        member["tags_count"] = len(member["tags"])
        return Reply(204, b"")


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
