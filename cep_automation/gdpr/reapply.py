"""After a database restore: erase again everyone an erasure record names (``cep-automation gdpr reapply``).

A backup taken before an erasure brings the person back. The Redis journal still lists the erasure, by
lead ids and keyed hashes of every email and phone; the leads matching either are anonymized again and the
restored tables scrubbed, and the records go back into ``gdpr_erasures``. The providers are not asked
again: a restore does not bring anyone back there. Safe to run any number of times.
"""

from __future__ import annotations

from typing import Any

import psycopg

from cep_automation.gdpr.database import erase_from_database
from cep_automation.gdpr.identifiers import hash_key, keyed_hash
from cep_automation.gdpr.needles import Needles
from cep_automation.gdpr.records import journaled, restore_record
from cep_automation.gdpr.redis_store import erase_from_redis
from cep_automation.gdpr.subjects import Subject, absorb, email_or_none, phone_or_none

SCAN_BATCH = 5000


def _matching_leads(conn: psycopg.Connection[Any], hashes: set[str], lead_ids: set[str]) -> list[dict[str, Any]]:
    """Leads still holding personal data whose id is listed or whose email or phone hashes to a listed hash."""
    key = hash_key(conn)
    found = []
    with conn.cursor(name="gdpr_reapply") as cursor:  # server-side: the leads table may be large
        cursor.itersize = SCAN_BATCH
        cursor.execute("SELECT id::text AS id, name, email, phone FROM leads"
                       " WHERE email IS NOT NULL OR phone IS NOT NULL OR erased_at IS NULL")
        for row in cursor:
            email, phone = email_or_none(row["email"]), phone_or_none(row["phone"])
            if (row["id"] in lead_ids or (email and keyed_hash(key, "email", email) in hashes)
                    or (phone and keyed_hash(key, "phone", phone) in hashes)):
                found.append(row)
    return found


def reapply(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Erase again what a restore brought back; what was done, in numbers."""
    records = journaled()
    with conn.transaction():
        restored = sum(restore_record(conn, record) for record in records)
    rows = conn.execute("SELECT subject_hashes, lead_ids::text[] AS lead_ids FROM gdpr_erasures"
                        " WHERE status <> 'pending'").fetchall()
    hashes = {h for row in rows for h in row["subject_hashes"]}
    lead_ids = {i for row in rows for i in row["lead_ids"]}
    subject = Subject()
    absorb(subject, _matching_leads(conn, hashes, lead_ids))
    report: dict[str, Any] = {"erasures": len(rows), "records_restored": restored,
                              "leads_found": len(subject.lead_ids)}
    if subject.lead_ids:
        with conn.transaction():
            report["database"] = erase_from_database(conn, subject)
        report["redis"] = erase_from_redis(Needles.of(subject)).asdict()
    return report
