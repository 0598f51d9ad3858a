"""Masking of personal data and secrets in log lines (leads are personal data under the GDPR/RGPD)."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+ and 8-15 digits) and Spanish 9-digit numbers, spaced or not, also with the
# bare 34 prefix WhatsApp writes (34612345678); dates and ids
# (no +, not starting with 6-9 or not 9 digits) are left alone.
_PHONE = re.compile(r"(?<![\w+])(\+\d{1,3}(?:[ \-]?\d){7,12}|(?:34)?[6789]\d{2}(?:[ \-]?\d{3}){2})(?![\w])")
_PHONE_START = re.compile(r"\+\d|[6789]\d\d")  # what every match of _PHONE contains: a cheap test before it
_SECRET_PARAM = re.compile(r"((?:access_token|token|key|api_key|apikey|secret|password)=)[^&\s\"']+", re.I)
_BEARER = re.compile(r"(Bearer|OAuth|Zoho-oauthtoken|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)


def mask_email(email: str) -> str:
    """``ana.garcia@example.com`` → ``a***@example.com``."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", email)


def mask_phone(phone: str) -> str:
    """``+34 600 123 456`` → ``+34*******456`` (country code and last three digits kept)."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "***"
    prefix = "+" + digits[:2] if phone.strip().startswith("+") else ""
    hidden = len(digits) - len(prefix.lstrip("+")) - 3
    return f"{prefix}{'*' * hidden}{digits[-3:]}"


def redact(text: str) -> str:
    """Mask every email, phone number, bearer token and secret query parameter in ``text``.

    Each pattern runs only where what it needs is present (an ``=``, a scheme's name, an ``@``, the start of a
    phone number): most log lines have none of them, and four regular expressions over every line and argument
    were a third of a log line's cost."""
    if "=" in text:
        text = _SECRET_PARAM.sub(r"\1***", text)
    folded = text.casefold()  # as the pattern's IGNORECASE matches ("BAſIC" too)
    if "bearer" in folded or "oauth" in folded or "basic" in folded:
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    if _PHONE_START.search(text):
        text = _PHONE.sub(lambda m: mask_phone(m.group(1)), text)
    return text
