"""The Meta Graph API error object, shared by the WhatsApp and Meta Ads integrations.

Graph answers every error as ``{"error": {message, type, code, error_subcode?, error_data?, fbtrace_id,
is_transient?}}`` and sends the same logical error under different HTTP statuses (a rate limit may be
a 400 or a 429), so the integrations decide by ``code`` and only fall back to the status.
This module is a helper, not a plugin: it registers nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from cep_automation.redact import redact

_CODE_PREFIX = re.compile(r"^\(#\d+\)\s*")


@dataclass(frozen=True)
class GraphError:
    """One Graph error object, with the parts worth showing an operator."""

    code: int
    subcode: int | None
    title: str
    details: str
    fbtrace_id: str
    is_transient: bool
    status: int

    @classmethod
    def parse(cls, response: requests.Response) -> GraphError | None:
        """The error object of a response, or None if the body is not one."""
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return None
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return None
        return cls(code=error["code"], subcode=_int_or_none(error.get("error_subcode")),
                   title=_CODE_PREFIX.sub("", str(error.get("message") or error.get("error_user_title") or "")),
                   details=_details(error), fbtrace_id=str(error.get("fbtrace_id") or "-"),
                   is_transient=bool(error.get("is_transient")), status=response.status_code)

    @property
    def retryable_status(self) -> bool:
        """What the HTTP status alone says (for codes the API documents no class for)."""
        return self.status == 429 or self.status >= 500 or self.is_transient

    def describe(self, service: str, hint: str = "") -> str:
        """``whatsapp: error 131026/- Message Undeliverable (HTTP 400, fbtrace_id A1b2)``, redacted."""
        sub = f"/{self.subcode}" if self.subcode else ""
        text = f"{service}: error {self.code}{sub} {self.title} (HTTP {self.status}, fbtrace_id {self.fbtrace_id})"
        if self.details:
            text += f": {self.details}"
        if hint:
            text += f"; {hint}"
        return redact(text)[:500]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _details(error: dict[str, Any]) -> str:
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    return str(details or error.get("error_user_msg") or "")
