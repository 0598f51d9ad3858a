"""A fake WhatsApp Cloud API: ``POST /{version}/{phone-number-id}/messages`` and its documented errors.

Point ``WHATSAPP_BASE_URL`` at :attr:`FakeWhatsApp.base_url`. Accepted messages are recorded in
:attr:`FakeWhatsApp.messages` and answered with a ``wamid``; :meth:`FakeWhatsApp.fail_with_code` answers
any code of the api-contracts §3 table with its title and usual HTTP status.
:meth:`FakeWhatsApp.send_statuses_to` makes it post a signed ``sent`` status webhook for each accepted
message, carrying the ``biz_opaque_callback_data`` it was sent with, as WhatsApp does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar

from cep_automation.testing.fake_graph import FakeGraph
from cep_automation.testing.fakes import Recorded, Reply

TITLES: dict[int, str] = {
    0: "AuthException", 190: "Access token has expired",
    10: "API Permission Denied", 200: "API Permission", 299: "API Permission",
    4: "API Too Many Calls", 80007: "Rate limit issues", 130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131047: "Re-engagement message", 131026: "Message Undeliverable",
    100: "Invalid parameter", 131008: "Required parameter is missing", 131009: "Parameter value is not valid",
    33: "Parameter value is not valid",
    132000: "Template Param Count Mismatch", 132001: "Template does not exist",
    132012: "Template Parameter Format Mismatch", 132015: "Template is Paused", 132016: "Template is Disabled",
    131000: "Something went wrong", 131016: "Service unavailable", 1: "API Unknown", 2: "API Service",
    131030: "Recipient phone number not in allowed list", 133010: "Account not registered",
    368: "Temporarily blocked for policies violations", 131031: "Business Account locked",
}
# Usual HTTP status per code (api-contracts §3); everything else is a 400. 4/80007 follow the v23 examples.
STATUSES: dict[int, int] = {0: 401, 190: 401, 10: 403, **{c: 403 for c in range(200, 300)}, 4: 429, 80007: 429,
                            131000: 500, 131016: 503, 1: 500, 2: 503, 131031: 403}


def wamid() -> str:
    return "wamid." + base64.b64encode(b"HBgL" + secrets.token_bytes(24)).decode()


class FakeWhatsApp(FakeGraph):
    """WhatsApp Cloud API on 127.0.0.1 for one business number.

    Parameters:
      token: the system-user token requests must carry.
      phone_number_id: the business number's id in the path (others get error 100).
      templates: ``{(name, language): number of body parameters}`` that exist; None accepts any template.
    Attributes:
      messages: each accepted message: ``{id, to, type, template?, language?, params?, text?}``.
    """

    TITLES = TITLES
    STATUSES = STATUSES
    TRANSIENT: ClassVar[frozenset[int]] = frozenset({4, 80007, 130429, 131056, 131000, 131016, 1, 2})

    def __init__(self, token: str = "test-token", phone_number_id: str = "106540352242922", version: str = "v23.0",
                 templates: dict[tuple[str, str], int] | None = None) -> None:
        super().__init__(token, version)
        self.phone_number_id = phone_number_id
        self.templates = templates
        self.messages: list[dict[str, Any]] = []
        self.status_url: str | None = None
        self.status_secret = ""
        self.status_delay_s = 0.0
        self.statuses_delivered = 0

    def send_statuses_to(self, url: str, app_secret: str, *, delay_s: float = 0.1) -> None:
        """Post a signed ``sent`` status of every accepted message to ``url`` (our ``/webhooks/whatsapp``),
        ``delay_s`` after accepting it, retrying while the receiver does not answer 200 (as Meta does)."""
        self.status_url, self.status_secret, self.status_delay_s = url, app_secret, delay_s

    def _post_status(self, message_id: str, to: str, reference: str | None) -> None:
        status: dict[str, Any] = {"id": message_id, "status": "sent", "timestamp": str(int(time.time())),
                                  "recipient_id": to}
        if reference:
            status["biz_opaque_callback_data"] = reference
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
                "display_phone_number": "15550783881", "phone_number_id": self.phone_number_id},
                "statuses": [status]}}]}]}).encode()
        signature = "sha256=" + hmac.new(self.status_secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.status_url or "", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        time.sleep(self.status_delay_s)
        for _ in range(60):
            try:
                with opener.open(request, timeout=5) as answer:
                    if answer.status == 200:
                        with self._lock:
                            self.statuses_delivered += 1
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)

    def fail_with_code(self, code: int, http_status: int | None = None, *, times: int = 1,
                       headers: dict[str, str] | None = None, **fields: Any) -> None:
        fields.setdefault("error_data", {"messaging_product": "whatsapp", "details": self.TITLES.get(code, "")})
        super().fail_with_code(code, http_status, times=times, headers=headers, **fields)

    def route(self, request: Recorded, path: str) -> Reply:
        if request.method != "POST" or path != f"/{self.phone_number_id}/messages":
            return self.unsupported(request, path)
        try:
            body = request.json
        except ValueError:
            body = None
        problem = self.invalid(body) if isinstance(body, dict) else self.detail(100, "the body is not a JSON object")
        if problem:
            return problem
        return self.accept(body)

    def invalid(self, body: dict[str, Any]) -> Reply | None:
        """The documented error for a malformed send, or None."""
        if body.get("messaging_product") != "whatsapp":
            return self.detail(100, "messaging_product must be whatsapp")
        missing = [name for name in ("to", "type") if not body.get(name)]
        if missing:
            return self.detail(131008, f"The parameter {missing[0]} is required.")
        if body["type"] == "template":
            return self.invalid_template(body.get("template") or {})
        if body["type"] == "text" and not (body.get("text") or {}).get("body"):
            return self.detail(131008, "The parameter text['body'] is required.")
        return None if body["type"] in ("template", "text") else self.detail(100, f"type {body['type']}")

    def invalid_template(self, template: dict[str, Any]) -> Reply | None:
        name, language = template.get("name"), (template.get("language") or {}).get("code")
        if not name or not language:
            return self.detail(131008, "The parameters template['name'] and template['language'] are required.")
        if self.templates is None:
            return None
        if (name, language) not in self.templates:
            return self.detail(132001, f"template name ({name}) does not exist in {language}")
        if len(body_params(template)) != self.templates[(name, language)]:
            return self.detail(132000, f"body: number of localizable_params does not match the template {name}")
        return None

    def detail(self, code: int, details: str) -> Reply:
        return self.error(code, error_data={"messaging_product": "whatsapp", "details": details})

    def accept(self, body: dict[str, Any]) -> Reply:
        message_id = wamid()
        template = body.get("template") or {}
        record = {"id": message_id, "to": body["to"], "type": body["type"]}
        if body["type"] == "template":
            record.update(template=template["name"], language=template["language"]["code"],
                          params=body_params(template))
        else:
            record["text"] = body["text"]["body"]
        self.messages.append(record)
        if self.status_url:
            threading.Thread(target=self._post_status, args=(message_id, body["to"],
                             body.get("biz_opaque_callback_data")), daemon=True).start()
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                           "messages": [{"id": message_id, "message_status": "accepted"}]})


def body_params(template: dict[str, Any]) -> list[str]:
    """The text parameters of a template's body component."""
    for component in template.get("components") or []:
        if component.get("type") == "body":
            return [str(p.get("text")) for p in component.get("parameters") or []]
    return []
