"""The patterns that find a person in stored text, written once for both PostgreSQL (``~*``) and Python ``re``.

Emails and phones are unique enough to scrub wherever they appear; a name ("Ana García") is scrubbed only
in records that also carry one of the person's lead ids, so another Ana keeps hers. Phones match however
they were typed: ``+34 600 12 34 56``, ``600123456``, ``34600123456``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cep_automation.gdpr.subjects import Subject

ERASED = "[erased]"
_SEP = "[ .-]?"


def _literal(text: str) -> str:
    """``text`` matched literally by both regex dialects (every non-alphanumeric character escaped)."""
    return "".join(ch if ch.isalnum() or ch == " " else "\\" + ch for ch in text)


def phone_pattern(phone: str) -> str:
    """``+34600123456`` → the digits with optional separators, the country code optional for Spain."""
    digits = phone.lstrip("+")
    if digits.startswith("34") and len(digits) == 11:
        return f"(\\+?34{_SEP})?" + _SEP.join(digits[2:])
    return "\\+?" + _SEP.join(digits)


def alternation(parts: list[str]) -> str | None:
    return "(" + "|".join(parts) + ")" if parts else None


@dataclass(frozen=True)
class Needles:
    """Case-insensitive patterns: ``identifiers`` (emails, phones), ``names``, and ``lead_ids``."""

    identifiers: str | None
    names: str | None
    lead_ids: str | None

    @classmethod
    def of(cls, subject: Subject) -> Needles:
        identifiers = [_literal(e) for e in sorted(subject.emails)] + [phone_pattern(p) for p in sorted(subject.phones)]
        names = [_literal(n) for n in sorted(subject.names, key=len, reverse=True) if len(n) >= 3]
        lead_ids = [_literal(i) for i in sorted(subject.lead_ids)]
        return cls(alternation(identifiers), alternation(names), alternation(lead_ids))

    def scrub(self, text: str, *, linked: bool | None = None) -> str:
        """``text`` with every identifier, and the names when ``text`` is linked to a lead id, replaced."""
        if self.identifiers:
            text = re.sub(self.identifiers, ERASED, text, flags=re.I)
        if linked is None:
            linked = bool(self.lead_ids and re.search(self.lead_ids, text, flags=re.I))
        if self.names and linked:
            text = re.sub(self.names, ERASED, text, flags=re.I)
        return text

    def found_in(self, text: str) -> bool:
        return self.scrub(text) != text
