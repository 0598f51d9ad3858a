"""A fake receiver for the built-in webhook CRM: checks the signature and upserts leads by external id.

It answers as a receiver is expected to: **403** ``{"error": "invalid signature"}`` when
``X-CEP-Signature`` is missing or is not ``sha256=`` + hex HMAC-SHA256 of the raw body with the
shared secret; **400** for a body that is not a JSON lead; **201** ``{"id", "created": true}`` for
a new external id and **200** ``{"id", "created": false}`` for one it already has (same ``id``).
A signed ``DELETE`` with ``{"external_ids", "emails", "phones"}`` erases those leads (200 ``{"erased": n}``,
404 when it holds none). A signed POST with ``X-CEP-Event: task`` and ``{"external_id", "task": {"key", "title"}}``
records a task by its key (201 new, 200 the same key again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

PATH = "/leads"


class FakeCrmWebhook(FakeServer):
    """The receiving end of ``CRM_WEBHOOK_URL`` (use :attr:`endpoint` as the setting).

    Parameters:
      secret: the shared ``CRM_WEBHOOK_SECRET``.
    """

    def __init__(self, secret: str = "webhook-secret") -> None:
        super().__init__()
        self.secret = secret
        self.leads: dict[str, dict[str, Any]] = {}  # external id → last body received
        self.ids: dict[str, str] = {}  # external id → the id we answered
        self.tasks: dict[str, dict[str, Any]] = {}  # task key → the last body received
        self.task_posts = 0  # every task POST, repeats included

    @property
    def endpoint(self) -> str:
        return self.url + PATH

    def handle(self, request: Recorded) -> Reply:
        if request.method == "DELETE" and request.path == PATH:
            return self._erase(request)
        if request.method != "POST" or request.path != PATH:
            return Reply(404, {"error": f"no route for {request.method} {request.path}"})
        if not self.signature_ok(request):
            return Reply(403, {"error": "invalid signature"})
        try:
            lead = json.loads(request.body)
        except ValueError:
            return Reply(400, {"error": "body is not JSON"})
        if request.headers.get("x-cep-event") == "task":
            return self._task(lead)
        key = request.headers.get("idempotency-key") or (lead.get("external_id") if isinstance(lead, dict) else None)
        if not isinstance(lead, dict) or not key:
            return Reply(400, {"error": "a lead object with an external_id (Idempotency-Key) is required"})
        return self._upsert(str(key), lead)

    def signature_ok(self, request: Recorded) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(request.headers.get("x-cep-signature", ""), expected)

    def _upsert(self, key: str, lead: dict[str, Any]) -> Reply:
        with self._lock:
            created = key not in self.ids
            if created:
                self.ids[key] = f"crm-{len(self.ids) + 1}"
            self.leads[key] = lead
            return Reply(201 if created else 200, {"id": self.ids[key], "created": created})

    def _task(self, body: Any) -> Reply:
        task = body.get("task") if isinstance(body, dict) else None
        if not isinstance(task, dict) or not task.get("key") or not task.get("title"):
            return Reply(400, {"error": "a task needs task.key and task.title"})
        with self._lock:
            self.task_posts += 1
            created = task["key"] not in self.tasks
            self.tasks[task["key"]] = body
            return Reply(201 if created else 200, {"id": f"task-{task['key']}", "created": created})

    def _erase(self, request: Recorded) -> Reply:
        """GDPR erasure: drop every lead whose key or email is listed (200 with the count; 404 if none)."""
        if not self.signature_ok(request):
            return Reply(403, {"error": "invalid signature"})
        body = request.json if isinstance(request.json, dict) else {}
        keys = set(body.get("external_ids") or [])
        emails = {str(e).strip().lower() for e in body.get("emails") or []}
        with self._lock:
            doomed = [k for k, lead in self.leads.items()
                      if k in keys or str(lead.get("email", "")).strip().lower() in emails]
            for key in doomed:
                del self.leads[key]
                self.ids.pop(key, None)
        return Reply(200, {"erased": len(doomed)}) if doomed else Reply(404, {"error": "no such records"})

    # Scripted answers a receiver may give.
    def fail_server(self, status: int = 503, retry_after: int | None = None, times: int = 1) -> None:
        """Answer 5xx (or 429) the next ``times`` requests, optionally with ``Retry-After``."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.fail_next(status, {"error": "temporarily unavailable"}, headers=headers, times=times)

    def reject(self, status: int = 422, error: str = "lead rejected") -> None:
        """Answer the next request with a 4xx that retrying cannot fix."""
        self.fail_next(status, {"error": error})
