"""Job state, progress and log lines, kept in Redis per message id (BullMQ's ``job.updateProgress``/``job.log``).

Kept 24 h after completion and 7 days after failure, as the seed's retention says.
"""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cep_automation.db.redis_client import as_text, evalsha, get_redis, key, lua
from cep_automation.records.state_writer import JobWrite, writer

KEEP_COMPLETED_S = 24 * 3600
KEEP_FAILED_S = 7 * 24 * 3600
MAX_LOG_LINES = 1000
STATES = ("queued", "active", "retrying", "completed", "failed", "dead", "skipped")

def now() -> float:
    return round(time.time(), 3)


# Creates the record only if the worker has not already written a later state (the producer's
# "queued" may be sent after the worker's "active": they come from different processes).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


# Set while the enqueue script itself wrote the job's "queued" record (records/broker_state.enqueue_once): the
# JobState middleware's after_enqueue then has nothing left to write.
queued_written: ContextVar[bool] = ContextVar("queued_written", default=False)


def queued_fields(message: Any) -> tuple[str, int, list[Any]]:
    """The job key, retention and fields of a new message's "queued" record (for the enqueue script)."""
    fields = {"state": "queued", "updated_at": now(), "actor": message.actor_name, "queue": message.queue_name}
    return key("job", message.message_id), KEEP_FAILED_S, [item for pair in fields.items() for item in pair]


def record(message_id: str, state: str, *, only_if_new: bool = False, **fields: Any) -> None:
    """Set a job's state and any extra fields, and its retention for that state (sent in the background)."""
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    data = {"state": state, "updated_at": now()}
    data.update({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None})
    ttl = KEEP_COMPLETED_S if state in ("completed", "skipped") else KEEP_FAILED_S
    job_key, log_key = key("job", message_id), key("job", message_id, "log")

    if not only_if_new:
        writer.submit(JobWrite(job_key, log_key, data=data, ttl=ttl))
        return

    def create(pipe: Any) -> None:  # by hash (EVALSHA): the script's text is not sent with every job
        evalsha(pipe, lua(_CREATE), [job_key], [ttl, *[item for pair in data.items() for item in pair]])

    writer.submit(create)


@dataclass
class JobInfo:
    """What is known of one message id."""

    message_id: str
    state: str
    actor: str = ""
    queue: str = ""
    progress: int = 0
    attempt: int = 0
    result: Any = None
    error: str = ""
    log: list[str] = field(default_factory=list)
    updated_at: float = 0.0

    def asdict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def get_job(message_id: str) -> JobInfo | None:
    """The stored state of a message, or None if unknown or expired."""
    writer.flush()  # read this process's own writes
    client = get_redis()
    raw = client.hgetall(key("job", message_id))
    if not raw:
        return None
    data = {as_text(k): as_text(v) for k, v in raw.items()}
    lines = [as_text(line) for line in client.lrange(key("job", message_id, "log"), 0, -1)]
    return JobInfo(
        message_id=message_id,
        state=data["state"],
        actor=data.get("actor", ""),
        queue=data.get("queue", ""),
        progress=int(data.get("progress", 0)),
        attempt=int(data.get("attempt", 0)),
        result=json.loads(data["result"]) if "result" in data else None,
        error=data.get("error", ""),
        log=lines,
        updated_at=float(data.get("updated_at", 0)),
    )


def record_progress(message_id: str, percent: int) -> None:
    """Store a job's progress (sent in the background)."""
    fields = {"progress": int(percent), "updated_at": now()}
    writer.submit(JobWrite(key("job", message_id), key("job", message_id, "log"), data=fields))


def append_log(message_id: str, line: str) -> None:
    """Append one timestamped line to a job's log, keeping the last :data:`MAX_LOG_LINES`."""
    entry = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"
    writer.submit(JobWrite(key("job", message_id), key("job", message_id, "log"), lines=[entry], keep=MAX_LOG_LINES,
                           log_ttl=KEEP_FAILED_S))


def _job_keys(limit: int, count: int = 500) -> list[bytes]:
    """Up to ``limit`` job record keys (not their logs), by a bounded scan."""
    names: list[bytes] = []
    for name in get_redis().scan_iter(match=key("job", "") + "*", count=count):
        if not name.endswith(b":log"):
            names.append(name)
        if len(names) >= limit:
            break
    return names


def scan_jobs(limit: int) -> dict[str, dict[str, Any]]:
    """Up to ``limit`` job records found in Redis (a bounded scan), by message id: state, actor, queue, progress."""
    client, prefix = get_redis(), key("job", "")
    names = _job_keys(limit)
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


def clean(state: str, older_than_s: float, *, limit: int = 100_000) -> int:
    """Delete the records (and log lines) of jobs in ``state`` last updated over ``older_than_s`` ago.

    BullMQ's ``queue.clean``: it frees Redis before the records' own expiry; the audit log keeps each job's
    history. At most ``limit`` records are looked at (a bounded scan). Returns how many were deleted.
    """
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    client, cutoff = get_redis(), now() - older_than_s
    names = _job_keys(limit, count=1000)
    pipe = client.pipeline()
    for name in names:
        pipe.hmget(name, "state", "updated_at")
    doomed = [name for name, (found, updated) in zip(names, pipe.execute() if names else [], strict=True)
              if found is not None and as_text(found) == state and float(updated or 0) <= cutoff]
    for start in range(0, len(doomed), 500):
        batch = doomed[start:start + 500]
        client.delete(*batch, *(name + b":log" for name in batch))
    return len(doomed)
