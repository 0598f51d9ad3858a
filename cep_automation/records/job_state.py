"""Job state, progress and log lines, kept in Redis per message id (BullMQ's ``job.updateProgress``/``job.log``).

Kept 24 h after completion and 7 days after failure, as the seed's retention says.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from dramatiq.middleware import CurrentMessage

from cep_automation.db.redis_client import get_redis, key
from cep_automation.records.state_writer import writer

KEEP_COMPLETED_S = 24 * 3600
KEEP_FAILED_S = 7 * 24 * 3600
MAX_LOG_LINES = 1000
STATES = ("queued", "active", "retrying", "completed", "failed", "dead", "skipped")
STEP_STATUSES = ("success", "skipped", "failed")

# Per-step outcomes of the messages being processed in this process, read by the Audit middleware.
_steps: dict[str, dict[str, dict[str, Any]]] = {}


def _now() -> float:
    return round(time.time(), 3)


# Creates the record only if the worker has not already written a later state (the producer's
# "queued" may be sent after the worker's "active": they come from different processes).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def record(message_id: str, state: str, *, only_if_new: bool = False, **fields: Any) -> None:
    """Set a job's state and any extra fields, and its retention for that state (sent in the background)."""
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    data = {"state": state, "updated_at": _now()}
    data.update({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None})
    ttl = KEEP_COMPLETED_S if state in ("completed", "skipped") else KEEP_FAILED_S
    job_key, log_key = key("job", message_id), key("job", message_id, "log")

    def write(pipe: Any) -> None:
        if only_if_new:
            pipe.eval(_CREATE, 1, job_key, ttl, *[item for pair in data.items() for item in pair])
            return
        pipe.hset(job_key, mapping=data)
        pipe.expire(job_key, ttl)
        pipe.expire(log_key, ttl)

    writer.submit(write)


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
    data = {k.decode(): v.decode() for k, v in raw.items()}
    lines = [line.decode() for line in client.lrange(key("job", message_id, "log"), 0, -1)]
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


class JobHandle:
    """The running job as seen from inside an actor."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id

    def progress(self, percent: int) -> None:
        """Report progress from 0 to 100."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent}")
        job_key, fields = key("job", self.message_id), {"progress": int(percent), "updated_at": _now()}
        writer.submit(lambda pipe: pipe.hset(job_key, mapping=fields))

    def log(self, line: str) -> None:
        """Append a log line readable with ``cep-automation jobs show``."""
        log_key = key("job", self.message_id, "log")
        entry = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"

        def write(pipe: Any) -> None:
            pipe.rpush(log_key, entry)
            pipe.ltrim(log_key, -MAX_LOG_LINES, -1)
            pipe.expire(log_key, KEEP_FAILED_S)

        writer.submit(write)


    def step(self, name: str, status: str, detail: str | None = None) -> None:
        """Record one step's outcome (``success``, ``skipped`` or ``failed``) for the audit log."""
        if status not in STEP_STATUSES:
            raise ValueError(f"step status must be one of {', '.join(STEP_STATUSES)}, got {status!r}")
        outcome: dict[str, Any] = {"status": status}
        if detail:
            outcome["detail"] = detail
        _steps.setdefault(self.message_id, {})[name] = outcome
        self.log(f"{name}: {status}" + (f" ({detail})" if detail else ""))


def pop_steps(message_id: str) -> dict[str, dict[str, Any]]:
    """The step outcomes recorded for a message, forgotten once read."""
    return _steps.pop(message_id, {})


class _NoJob(JobHandle):
    """Used when an actor is called directly (unit tests, scripts): reports go nowhere."""

    def __init__(self) -> None:
        super().__init__("")

    def progress(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent}")

    def log(self, line: str) -> None:
        pass

    def step(self, name: str, status: str, detail: str | None = None) -> None:
        if status not in STEP_STATUSES:
            raise ValueError(f"step status must be one of {', '.join(STEP_STATUSES)}, got {status!r}")


def current_job() -> JobHandle:
    """The handle of the message being processed by this thread."""
    message = CurrentMessage.get_current_message()
    return JobHandle(message.message_id) if message is not None else _NoJob()
