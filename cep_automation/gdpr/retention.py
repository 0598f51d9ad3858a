"""What ``data.retention`` purges: each kind of record once it is older than its setting, in batches.

Each batch is one short transaction (``CEP_RETENTION_BATCH`` rows), so a large backlog never holds locks for
long; a second run finds nothing left to do. Leads are anonymized, not deleted: statistics keep counting them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from cep_automation.db.redis_client import get_redis, key
from cep_automation.gdpr.subjects import ERASED_NAME
from cep_automation.settings import Settings

# Leads that never enrolled. There is no enrollment status yet (the leads issue adds it): until then every
# lead counts as never enrolled; then this becomes "status IS DISTINCT FROM 'enrolled'".
NEVER_ENROLLED = "TRUE"

PURGES: dict[str, tuple[str, str]] = {
    # kind: (setting, one batch: %(cutoff)s and %(batch)s)
    "audit_log": ("cep_retention_audit_days",
                  "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < %(cutoff)s"
                  " LIMIT %(batch)s)"),
    "dead_letters": ("cep_retention_dead_letters_days",
                     "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE status <> 'dead'"
                     " AND updated_at < %(cutoff)s LIMIT %(batch)s)"),
    "effects": ("cep_retention_effects_days",
                "DELETE FROM effects WHERE id IN (SELECT id FROM effects WHERE created_at < %(cutoff)s"
                " LIMIT %(batch)s)"),
    "leads": ("cep_retention_leads_days",
              "UPDATE leads SET name = %(erased)s, email = NULL, phone = NULL, consent_ip = NULL, consent_text = NULL,"
              " erased_at = now() WHERE id IN (SELECT id FROM leads WHERE erased_at IS NULL AND created_at < %(cutoff)s"
              f" AND {NEVER_ENROLLED} LIMIT %(batch)s)"),
    "uploads": ("cep_retention_uploads_days",
                "UPDATE uploads SET result = NULL, error = NULL, updated_at = now() WHERE id IN (SELECT id FROM uploads"
                " WHERE created_at < %(cutoff)s AND (result IS NOT NULL OR error IS NOT NULL) LIMIT %(batch)s)"),
}


def cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def purge(conn: psycopg.Connection[Any], kind: str, settings: Settings,
          on_batch: Callable[[str, int], None] | None = None) -> int:
    """Purge one kind in batches until a batch comes back short; the rows it changed."""
    setting, sql = PURGES[kind]
    params = {"cutoff": cutoff(getattr(settings, setting)), "batch": settings.cep_retention_batch,
              "erased": ERASED_NAME}
    total = 0
    while True:
        with conn.transaction():
            done = conn.execute(sql, params).rowcount
        total += done
        if on_batch and done:
            on_batch(kind, done)
        if done < settings.cep_retention_batch:
            return total


def cap_job_logs(settings: Settings, client: redis.Redis | None = None) -> int:
    """Job logs in Redis: any kept longer than ``CEP_RETENTION_JOB_LOGS_DAYS`` (or for ever) get that expiry."""
    client = client or get_redis()
    limit_s = settings.cep_retention_job_logs_days * 86_400
    capped = 0
    for name in client.scan_iter(match=key("job", "*", "log"), count=500):
        ttl = client.ttl(name)
        if ttl == -1 or ttl > limit_s:
            capped += bool(client.expire(name, limit_s))
    return capped


def run_retention(conn: psycopg.Connection[Any], settings: Settings,
                  on_batch: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Every kind, in turn; the rows (or Redis keys) purged per kind."""
    report = {kind: purge(conn, kind, settings, on_batch) for kind in PURGES}
    report["job_logs"] = cap_job_logs(settings)
    return report
