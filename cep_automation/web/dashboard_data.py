"""What the dashboard shows, read from Redis (broker keys, job state) and PostgreSQL (audit, dead letters).

Every read is bounded: recent jobs are the newest audit rows plus at most :data:`MAX_SCANNED_JOBS`
job records found in Redis (the in-flight ones have no audit row yet), so a large backlog never
makes a page slow.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pendulum
from periodiq import cron

from cep_automation.db import connection
from cep_automation.db.redis_client import get_redis, key
from cep_automation.queues import POLICIES
from cep_automation.records import metrics
from cep_automation.records.job_state import get_job
from cep_automation.settings import get_settings

HEARTBEAT_WINDOW_MS = 60_000
MAX_SCANNED_JOBS = 2000
AUDIT_ROWS = 500
AUDIT_STATES = {"completed": "completed", "dead": "dead", "retried": "retrying", "skipped": "skipped"}


def queue_names() -> list[str]:
    return sorted({p.queue for p in POLICIES})


def broker_key(*parts: str) -> str:
    """A key of the Dramatiq Redis broker (``<namespace>:<queue>`` …), not one of ours."""
    return ":".join((get_settings().cep_namespace, *parts))


def workers_seen(exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Broker processes whose heartbeat (Dramatiq's ``__heartbeats__`` sorted set) is under a minute old."""
    client, now_ms = get_redis(), int(time.time() * 1000)
    beats = cast(list[tuple[bytes, float]], client.zrangebyscore(
        broker_key("__heartbeats__"), now_ms - HEARTBEAT_WINDOW_MS, "+inf", withscores=True))
    seen = {member.decode(): score for member, score in beats if member.decode() not in exclude}
    ids = list(seen)
    pipe = client.pipeline()
    for worker_id in ids:
        for queue in queue_names():
            pipe.scard(broker_key(f"__acks__.{worker_id}.{queue}"))
    counts = pipe.execute() if ids else []
    per_worker = len(queue_names())
    return [{"id": worker_id, "last_seen_s": max(0.0, (now_ms - seen[worker_id]) / 1000),
             "active": sum(counts[index * per_worker:(index + 1) * per_worker])}
            for index, worker_id in enumerate(ids)]


def held_counts(worker_ids: list[str]) -> dict[tuple[str, str], int]:
    """(queue, "active"|"delayed") → messages that workers hold: processing, or waiting for their retry time."""
    pipe, wanted = get_redis().pipeline(), []
    for worker_id in worker_ids:
        for queue in queue_names():
            for state, suffix in (("active", ""), ("delayed", ".DQ")):
                pipe.scard(broker_key(f"__acks__.{worker_id}.{queue}{suffix}"))
                wanted.append((queue, state))
    totals: dict[tuple[str, str], int] = {}
    for where, count in zip(wanted, pipe.execute() if wanted else [], strict=True):
        totals[where] = totals.get(where, 0) + count
    return totals


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


def scanned_jobs() -> dict[str, dict[str, Any]]:
    """Job records found in Redis (bounded scan), by message id."""
    client, prefix = get_redis(), key("job", "")
    names = []
    for name in client.scan_iter(match=prefix + "*", count=500):
        if not name.endswith(b":log"):
            names.append(name)
        if len(names) >= MAX_SCANNED_JOBS:
            break
    pipe = client.pipeline()
    for name in names:
        pipe.hmget(name, "state", "actor", "queue", "progress", "updated_at")
    jobs = {}
    for name, (state, actor, queue, progress, updated) in zip(names, pipe.execute() if names else [], strict=True):
        if state:
            jobs[name.decode()[len(prefix):]] = {
                "state": state.decode(), "actor": (actor or b"").decode(), "queue": (queue or b"").decode(),
                "progress": int(progress or 0), "updated_at": float(updated or 0)}
    return jobs


def recent_jobs(state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest jobs, optionally in one state: Redis state first, the audit log for older ones."""
    jobs = scanned_jobs()
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


def queued_payload(queue: str, message_id: str) -> dict[str, Any] | None:
    """The payload of a message still held by the broker (waiting, delayed or being processed)."""
    client = get_redis()
    for name in (f"{queue}.msgs", f"{queue}.DQ.msgs"):
        raw = client.hget(broker_key(name), message_id) if queue else None
        if raw:
            message = json.loads(raw)
            return {"args": message.get("args", []), "kwargs": message.get("kwargs", {})}
    return None


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
