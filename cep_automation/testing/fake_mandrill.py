"""A fake Mailchimp Transactional (Mandrill) API: ``messages/send-template`` and its documented errors.

Point ``MANDRILL_BASE_URL`` at :attr:`FakeMandrill.base_url`. Mandrill sends errors as HTTP 500
with ``{status: "error", code, name, message}`` whatever their cause; :meth:`FakeMandrill.fail_with`
does the same by default and lets a test pick a 4xx instead.
"""

from __future__ import annotations

import uuid
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

VERSION = "1.0"
# The spec's example code and a typical message for each documented error name (api-contracts.md §2);
# GeneralError and Unknown_Subaccount have no documented code.
ERRORS: dict[str, tuple[int, str]] = {
    "Invalid_Key": (401, "Invalid API key"),
    "ValidationError": (-2, "Validation error: {\"key\":\"You must specify a key value\"}"),
    "Unknown_Template": (5, "No such template"),
    "Unknown_Subaccount": (-1, "No subaccount exists with the id 'unknown'"),
    "PaymentRequired": (10, "This feature is only available for accounts with a positive balance."),
    "GeneralError": (-1, "An unexpected error occurred processing the request. Mandrill developers have been "
                         "notified."),
    "RequestLimitExceeded": (429, "Too many requests"),
}
ASYNC_ABOVE = 10  # more recipients than this, or async, and every status is "queued"


def error_reply(name: str, message: str | None = None, *, status: int = 500, code: int | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """Mandrill's error body for ``name`` (HTTP 500 unless told otherwise)."""
    known_code, known_message = ERRORS.get(name, (-1, name))
    body = {"status": "error", "code": known_code if code is None else code, "name": name,
            "message": message or known_message}
    return Reply(status, body, headers or {})


class FakeMandrill(FakeServer):
    """Mandrill on 127.0.0.1: ``POST /api/1.0/messages/send-template`` (``.json`` suffix optional).

    Parameters:
      key: the API key requests must carry in their ``key`` field.
      templates: the template slugs that exist; others give Unknown_Template.
    Attributes:
      sent: each accepted message (the request body without its key) with the answer given.
    """

    def __init__(self, key: str, templates: tuple[str, ...] = ("lead-confirmation",)) -> None:
        super().__init__()
        self.key = key
        self.templates = set(templates)
        self.sent: list[dict[str, Any]] = []
        self.rejects: dict[str, tuple[str, str]] = {}  # email → (status, reject_reason)
        self.queued_reason: str | None = None

    @property
    def base_url(self) -> str:
        """The value for ``MANDRILL_BASE_URL``."""
        return f"{self.url}/api/{VERSION}"

    def reject(self, email: str, reason: str = "hard-bounce", status: str = "rejected") -> None:
        """Answer ``rejected`` (or ``invalid``) with ``reason`` for this recipient, still with HTTP 200."""
        self.rejects[email.lower()] = (status, reason)

    def queue_all(self, reason: str | None = "sending-backlogged") -> None:
        """Answer ``queued`` (with ``queued_reason``) instead of ``sent``; None goes back to sending."""
        self.queued_reason = reason

    def fail_with(self, name: str, message: str | None = None, *, status: int = 500,
                  retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with the error ``name`` at HTTP ``status``."""
        reply = error_reply(name, message, status=status,
                            headers={"Retry-After": str(retry_after)} if retry_after is not None else None)
        self.fail_next(reply.status, reply.body, reply.headers, times=times)

    def handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path.removesuffix(".json") != f"/api/{VERSION}/messages/send-template":
            return error_reply("ValidationError", f"Unknown method or path {request.path}")
        try:
            body = request.json or {}
        except ValueError:
            return error_reply("ValidationError", "You must specify a key value")
        problem = self._check(body)
        if problem is not None:
            return problem
        results = [self._result(recipient, body) for recipient in body["message"]["to"]]
        self.sent.append({**{k: v for k, v in body.items() if k != "key"}, "results": results})
        return Reply(200, results)

    def _check(self, body: dict[str, Any]) -> Reply | None:
        if not body.get("key"):
            return error_reply("ValidationError")
        if body["key"] != self.key:
            return error_reply("Invalid_Key")
        for field in ("template_name", "template_content", "message"):
            if field not in body:
                return error_reply("ValidationError", f'Validation error: {{"{field}":"Sorry, this field can\'t '
                                   'be left blank."}')
        if not body["message"].get("to"):
            return error_reply("ValidationError", 'Validation error: {"message":{"to":"Please enter an array"}}')
        if body["template_name"] not in self.templates:
            return error_reply("Unknown_Template", f'No such template "{body["template_name"]}"')
        return None

    def _result(self, recipient: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        email = str(recipient.get("email", ""))
        result: dict[str, Any] = {"email": email, "status": "sent", "_id": uuid.uuid4().hex}
        many = len(body["message"]["to"]) > ASYNC_ABOVE or body.get("async")
        if email.lower() in self.rejects and not many:
            result["status"], result["reject_reason"] = self.rejects[email.lower()]
        elif self.queued_reason or many:
            result["status"] = "queued"
            result["queued_reason"] = self.queued_reason or "multiple-recipients"
        return result
