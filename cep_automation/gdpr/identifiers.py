"""Normalized identifiers of a person, and their keyed hashes: how an erasure record names someone without
storing their email or phone again (HMAC-SHA256 with ``CEP_GDPR_HASH_KEY``, else the database's own key)."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from typing import Any

import psycopg

from cep_automation.errors import PermanentError
from cep_automation.settings import get_settings

KINDS = ("email", "phone", "lead_id")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class IdentifierError(PermanentError):
    """An email, phone or lead id that cannot name anyone (the message says which and why)."""


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased, as leads are matched; an address without ``@`` and a domain is refused."""
    email = value.strip().lower()
    if not _EMAIL.match(email):
        raise IdentifierError("email: not an email address (expected name@domain.tld)")
    return email


def normalize_phone(value: str) -> str:
    """E.164: ``+34 600 12 34 56``, ``600123456`` and ``34600123456`` are all ``+34600123456`` (Spain by default)."""
    digits = re.sub(r"\D", "", value)
    if value.strip().startswith("00"):
        digits = digits[2:]
    elif not value.strip().startswith("+") and len(digits) == 9:
        digits = "34" + digits
    if not 8 <= len(digits) <= 15:
        raise IdentifierError("phone: not a phone number (expected 9 digits, or + and 8 to 15 digits)")
    return "+" + digits


def normalize_lead_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise IdentifierError("lead_id: not a lead id (expected a UUID)") from None


def normalize(kind: str, value: str) -> str:
    """The identifier of ``kind`` (email, phone or lead_id) in the form leads are matched by."""
    normalizers = {"email": normalize_email, "phone": normalize_phone, "lead_id": normalize_lead_id}
    if kind not in normalizers:
        raise IdentifierError(f"unknown identifier {kind!r}; use one of {', '.join(KINDS)}")
    return normalizers[kind](value)


def hash_key(conn: psycopg.Connection[Any]) -> bytes:
    """``CEP_GDPR_HASH_KEY``, or the random key migration 0004 stored in the database."""
    configured = get_settings().cep_gdpr_hash_key
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    row = conn.execute("SELECT secret FROM gdpr_hash_key").fetchone()
    if row is None:
        raise PermanentError("no GDPR hash key: set CEP_GDPR_HASH_KEY or run `cep-automation db migrate`")
    secret = row["secret"] if isinstance(row, dict) else row[0]
    return str(secret).encode()


def keyed_hash(key: bytes, kind: str, normalized: str) -> str:
    """``hmac-sha256:<hex>`` of ``kind:value``: equal for the same person, useless without the key."""
    return "hmac-sha256:" + hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()
