"""What the dashboard shows: broker and job state (through ``records``) and PostgreSQL (audit, dead letters).

Every read is bounded: recent jobs are the newest audit rows plus at most :data:`MAX_SCANNED_JOBS`
job records found in Redis (the in-flight ones have no audit row yet), so a large backlog never
makes a page slow.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from periodiq import cron

from cep_automation.db import connection
from cep_automation.queues import POLICIES
from cep_automation.records import metrics, scheduled_jobs
from cep_automation.records.broker_state import held_counts, queue_names, queued_payload, workers_seen
from cep_automation.records.job_state import get_job, scan_jobs

MAX_SCANNED_JOBS = 2000
AUDIT_ROWS = 500
AUDIT_STATES = {"completed": "completed", "dead": "dead", "retried": "retrying", "skipped": "skipped"}


def queue_counts() -> list[dict[str, Any]]:
    """Waiting, active, delayed and dead per queue."""
    lengths = metrics.queue_lengths()
    held = held_counts([w["id"] for w in workers_seen()])
    return [{"queue": queue, "waiting": lengths.get((queue, "waiting"), 0), "active": held.get((queue, "active"), 0),
             "delayed": lengths.get((queue, "delayed"), 0) + held.get((queue, "delayed"), 0),
             "dead": lengths.get((queue, "dead"), 0)} for queue in queue_names()]


def schedules() -> list[dict[str, Any]]:
    """Each cron job with its next tick (UTC) and its last recorded outcome."""
    periodic = [p for p in POLICIES if p.cron]
    with connection() as conn:
        last = {row["actor"]: row for row in conn.execute(
            "SELECT DISTINCT ON (actor) actor, status, created_at FROM audit_log WHERE actor = ANY(%s)"
            " ORDER BY actor, created_at DESC", ([p.actor for p in periodic],))}
    now = pendulum.now("UTC")
    return [{"actor": p.actor, "queue": p.queue, "cron": p.cron, "next_run": cron(p.cron).next_valid_date(now),
             "last_run": last.get(p.actor, {}).get("created_at"), "last_status": last.get(p.actor, {}).get("status")}
            for p in periodic]


def held_jobs(soonest: int = 5) -> dict[str, Any]:
    """Jobs held in PostgreSQL for later: how many are due within the hour and the day, per queue, and the soonest
    few."""
    with connection() as conn:
        hour, day = scheduled_jobs.count_waiting(conn, [dt.timedelta(hours=1), dt.timedelta(days=1)])
        return {"within_hour": hour, "within_day": day, "soonest": scheduled_jobs.list_waiting(conn, limit=soonest),
                "by_queue": scheduled_jobs.waiting_by_queue(conn)}


def recent_jobs(state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest jobs, optionally in one state: Redis state first, the audit log for older ones."""
    jobs = scan_jobs(MAX_SCANNED_JOBS)
    with connection() as conn:
        rows = conn.execute("SELECT message_id, actor, queue, status, created_at FROM audit_log"
                            " ORDER BY created_at DESC, id DESC LIMIT %s", (AUDIT_ROWS,)).fetchall()
    for row in rows:
        jobs.setdefault(row["message_id"], {
            "state": AUDIT_STATES.get(row["status"], row["status"]), "actor": row["actor"] or "",
            "queue": row["queue"] or "", "progress": 100 if row["status"] == "completed" else 0,
            "updated_at": row["created_at"].timestamp()})
    listed = [{"message_id": message_id, **job} for message_id, job in jobs.items()
              if state is None or job["state"] == state]
    return sorted(listed, key=lambda job: job["updated_at"], reverse=True)[:limit]


def job_detail(message_id: str) -> dict[str, Any] | None:
    """Everything known of one message: state, its audit history, and its payload while it is kept."""
    info = get_job(message_id)
    with connection() as conn:
        history = conn.execute("SELECT status, attempt, duration_ms, metadata, created_at FROM audit_log"
                               " WHERE message_id = %s ORDER BY created_at, id", (message_id,)).fetchall()
        letter = conn.execute("SELECT id, payload, status FROM dead_letters WHERE message_id = %s",
                              (message_id,)).fetchone()
    if info is None and not history and letter is None:
        return None
    payload = letter["payload"] if letter else queued_payload(info.queue if info else "", message_id)
    return {"message_id": message_id, "info": info, "history": history, "letter": letter, "payload": payload}
