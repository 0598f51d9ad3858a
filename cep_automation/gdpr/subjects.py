"""Finding every lead of one person: by normalized email and phone, following each lead's other identifier
(a lead with the same phone and another address is the same person), until nothing new turns up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from cep_automation.gdpr.identifiers import normalize_email, normalize_phone
from cep_automation.plugins.erasure import DataSubject

MAX_ROUNDS = 5
LEAD_COLUMNS = "id::text AS id, name, email, phone"
ERASED_NAME = "[erased]"  # the name an anonymized lead keeps (the column is NOT NULL)


@dataclass
class Subject:
    """What we know of the person: identifiers to erase everywhere, names to scrub where their leads appear."""

    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    lead_ids: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, list[str]]:
        return {name: sorted(getattr(self, name)) for name in ("emails", "phones", "names", "lead_ids")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        return cls(*(set(data.get(name) or ()) for name in ("emails", "phones", "names", "lead_ids")))

    def for_integrations(self) -> DataSubject:
        return DataSubject(tuple(sorted(self.emails)), tuple(sorted(self.phones)), tuple(sorted(self.lead_ids)))


def _leads_by_email(conn: psycopg.Connection[Any], emails: set[str]) -> list[dict[str, Any]]:
    return conn.execute(f"SELECT {LEAD_COLUMNS} FROM leads WHERE lower(trim(email)) = ANY(%s)",
                        (sorted(emails),)).fetchall()


def _leads_by_phone(conn: psycopg.Connection[Any], phones: set[str]) -> list[dict[str, Any]]:
    """Stored phones are written every which way: narrow by the last 9 digits, then compare normalized."""
    tails = sorted({phone[-9:] for phone in phones})
    rows = conn.execute(f"SELECT {LEAD_COLUMNS} FROM leads WHERE phone IS NOT NULL"
                        " AND right(regexp_replace(phone, '[^0-9]', '', 'g'), 9) = ANY(%s)", (tails,)).fetchall()
    return [row for row in rows if phone_or_none(row["phone"]) in phones]


def phone_or_none(value: str | None) -> str | None:
    try:
        return normalize_phone(value) if value else None
    except ValueError:
        return None


def email_or_none(value: str | None) -> str | None:
    try:
        return normalize_email(value) if value else None
    except ValueError:
        return None


def find_subject(conn: psycopg.Connection[Any], kind: str, value: str) -> Subject:
    """The person named by one normalized identifier, with every lead of theirs."""
    subject = Subject()
    if kind == "email":
        subject.emails.add(value)
    elif kind == "phone":
        subject.phones.add(value)
    else:
        rows = conn.execute(f"SELECT {LEAD_COLUMNS} FROM leads WHERE id = %s", (value,)).fetchall()
        subject.lead_ids.add(value)
        absorb(subject, rows)
    for _ in range(MAX_ROUNDS):
        before = (len(subject.emails), len(subject.phones))
        rows = (_leads_by_email(conn, subject.emails) if subject.emails else []) + (
            _leads_by_phone(conn, subject.phones) if subject.phones else [])
        absorb(subject, rows)
        if (len(subject.emails), len(subject.phones)) == before:
            break
    return subject


def absorb(subject: Subject, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        subject.lead_ids.add(row["id"])
        email, phone = email_or_none(row["email"]), phone_or_none(row["phone"])
        if email:
            subject.emails.add(email)
        if phone:
            subject.phones.add(phone)
        if row["name"] and row["name"].strip() and row["name"].strip() != ERASED_NAME:
            subject.names.add(row["name"].strip())
