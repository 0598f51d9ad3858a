"""A fake WhatsApp Cloud API: ``POST /{version}/{phone-number-id}/messages`` and its documented errors.

Point ``WHATSAPP_BASE_URL`` at :attr:`FakeWhatsApp.base_url`. Accepted messages are recorded in
:attr:`FakeWhatsApp.messages` and answered with a ``wamid``; :meth:`FakeWhatsApp.fail_with_code` answers
any code of the api-contracts §3 table with its title and usual HTTP status.
"""

from __future__ import annotations

import base64
import secrets
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
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                           "messages": [{"id": message_id, "message_status": "accepted"}]})


def body_params(template: dict[str, Any]) -> list[str]:
    """The text parameters of a template's body component."""
    for component in template.get("components") or []:
        if component.get("type") == "body":
            return [str(p.get("text")) for p in component.get("parameters") or []]
    return []
