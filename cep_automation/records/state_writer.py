"""Pipelined, batched Redis writes for job state, off the message hot path.

Every state change of every message used to cost a Redis round trip inside the worker thread,
halving throughput. Writes are now queued in order and sent by one thread per process every
:data:`INTERVAL_S` in a single pipeline; readers in the same process flush first, so they read
their own writes, and other processes see a change at most one interval later. While the process is backed up
(fetched messages wait for a worker thread: throughput counts, not a dashboard's freshness) the interval is
:data:`BUSY_INTERVAL_S`, long enough for most of a job's writes to merge into one script call. The effects
ledger sends its clean-up of Redis the same way (``effects.HeldCleared``): nobody waits for it either.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from cep_automation.backlog import backed_up, waiting
from cep_automation.db.redis_client import evalsha, execute_loading, get_redis, lua

logger = logging.getLogger("cep_automation.records.state_writer.StateWriter")
INTERVAL_S = 0.05
BUSY_INTERVAL_S = 0.25  # while fetched messages wait for a worker thread: a job's writes merge into one or two
WARN_EVERY_S = 10.0
MAX_QUEUED = 100_000

Op = Callable[[Any], None]  # adds commands to a redis pipeline


# One job's fields, log lines and retention in one command: the same writes as HSET, EXPIRE x2, RPUSH, LTRIM and
# EXPIRE were ~16 commands a lead in this thread, each packed and parsed by redis-py. KEYS: the job's hash, its log.
# ARGV: the retention of a state change ('' for none), the log's retention for lines alone, the lines to keep (0: all),
# the number of field and value items, those items, then the lines.
_JOB_WRITE = """
local n = tonumber(ARGV[4])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + n)) end
local lines = #ARGV > 4 + n
if lines then
  local keep = tonumber(ARGV[3])
  local length = redis.call('RPUSH', KEYS[2], unpack(ARGV, 5 + n))
  if keep > 0 and length > keep then redis.call('LTRIM', KEYS[2], -keep, -1) end
end
if ARGV[1] ~= '' then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
elseif lines and ARGV[2] ~= '' then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 0
"""


class JobWrite:
    """A job's fields, log lines and, with a state change, its retention: an operation a later one for the same job
    absorbs.

    A short job's "active", its progress reports, its step lines and "completed" usually wait in the same batch;
    sent as one script call they cost this process one command instead of a dozen. ``ttl`` None (a progress report,
    a log line) leaves the record's retention as it is; lines alone give the log ``log_ttl``. Only the last ``keep``
    lines are kept (None: the lines' writes say; with none, no limit).
    """

    __slots__ = ("data", "job_key", "keep", "lines", "log_key", "log_ttl", "ttl")

    def __init__(self, job_key: str, log_key: str, *, data: dict[str, Any] | None = None, ttl: int | None = None,
                 lines: list[str] | None = None, keep: int | None = None, log_ttl: int | None = None) -> None:
        self.job_key, self.log_key, self.data, self.ttl = job_key, log_key, data or {}, ttl
        self.lines, self.keep, self.log_ttl = lines or [], keep, log_ttl

    def absorbing(self, earlier: JobWrite) -> JobWrite:
        """This write after ``earlier`` (same job), as one: fields of the later win, lines in order."""
        return JobWrite(self.job_key, self.log_key, data={**earlier.data, **self.data},
                        ttl=earlier.ttl if self.ttl is None else self.ttl, lines=earlier.lines + self.lines,
                        keep=earlier.keep if self.keep is None else self.keep,
                        log_ttl=earlier.log_ttl if self.log_ttl is None else self.log_ttl)

    def __call__(self, pipe: Any) -> None:
        items = [item for pair in self.data.items() for item in pair]
        evalsha(pipe, lua(_JOB_WRITE), [self.job_key, self.log_key],
                ["" if self.ttl is None else self.ttl, self.log_ttl or "", self.keep or 0, len(items),
                 *items, *(self.lines[-self.keep:] if self.keep else self.lines)])


def merged(batch: list[Op]) -> list[Op]:
    """The batch with each job's successive :class:`JobWrite` folded into the last of them; other operations stay
    where they were."""
    out: list[Op | None] = []
    last: dict[str, int] = {}
    for op in batch:
        if isinstance(op, JobWrite):
            index = last.get(op.job_key)
            if index is not None:
                earlier = out[index]
                out[index] = None
                op = op.absorbing(earlier)  # type: ignore[arg-type]
            last[op.job_key] = len(out)
        out.append(op)
    return [op for op in out if op is not None]


class StateWriter:
    """Queues pipeline operations and sends them from a background thread, in submission order."""

    def __init__(self, backlog: Callable[[], int] = waiting) -> None:
        self.backlog = backlog  # messages fetched and waiting for a worker thread
        self._ops: deque[Op] = deque()
        self._flush_lock = threading.Lock()
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()

    def submit(self, op: Op) -> None:
        if self._pid is None:  # not started in this process (a fork forgets it: os.getpid() is a system call)
            self._start()
        if len(self._ops) >= MAX_QUEUED:
            self._ops.popleft()
            logger.warning("Redis unreachable for long: oldest job-state update dropped")
        self._ops.append(op)

    def flush(self) -> None:
        """Send everything queued so far. While Redis is unreachable the operations stay queued; a batch
        Redis refuses (a bad command) is dropped, so one bad write cannot block all later ones."""
        with self._flush_lock:
            batch = [self._ops.popleft() for _ in range(len(self._ops))]
            if not batch:
                return
            ops = merged(batch)
            try:
                replies = execute_loading(get_redis(), lambda pipe: [op(pipe) for op in ops])
            except (redis.ConnectionError, redis.TimeoutError):
                self._ops.extendleft(reversed(batch))
                raise
            except redis.RedisError as exc:
                logger.error("Redis refused a batch of %d job-state updates: %s", len(batch), exc)
                return
            refused = [reply for reply in replies if isinstance(reply, redis.ResponseError)]
            if refused:  # the others were written; these are dropped, so one bad write cannot block all later ones
                logger.error("Redis refused %d of a batch of %d job-state writes: %s", len(refused), len(replies),
                             refused[0])

    def forget_thread(self) -> None:
        """In a forked child: the parent's thread is not running here; the next submit starts one."""
        self._pid, self._start_lock = None, threading.Lock()

    def _start(self) -> None:
        with self._start_lock:
            if self._pid is not None:
                return
            # After a fork the parent's thread and queue are not ours.
            self._ops.clear()
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="cep-state-writer", daemon=True).start()

    def _run(self) -> None:
        failing_since: float | None = None
        last_warning = 0.0
        while True:
            self._wake.wait(self.interval())
            try:
                self.flush()
            except Exception as exc:
                # Once per WARN_EVERY_S, not every interval: a Redis outage would log 20 lines a second.
                now = time.monotonic()
                failing_since = failing_since or now
                if now - last_warning >= WARN_EVERY_S:
                    last_warning = now
                    logger.warning("Job state not written yet (%d queued): %s", len(self._ops), exc)
                continue
            if failing_since is not None:
                logger.info("Job state written again after %.0f s", time.monotonic() - failing_since)
                failing_since, last_warning = None, 0.0

    def interval(self) -> float:
        """Seconds until the next batch: longer while the process is backed up."""
        return BUSY_INTERVAL_S if backed_up(self.backlog) else INTERVAL_S

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            logger.warning("Job state lost at exit (%d updates): %s", len(self._ops), exc)


writer = StateWriter()
atexit.register(writer.flush_quietly)  # a short-lived producer (the CLI) still records "queued"
os.register_at_fork(after_in_child=writer.forget_thread)
