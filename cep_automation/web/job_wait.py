"""``GET /v1/jobs/{message_id}?wait=SECONDS``: answer when the job has ended, or when the wait is over.

The wait polls the job's state in Redis (:mod:`cep_automation.records.job_state`) with a sleep that grows
from 50 ms to half a second, on the event loop (each read in the thread pool), so a waiting caller holds no
thread. A wait is capped at :data:`MAX_WAIT_S`; the answer is then the job's state as ``GET`` without
``wait`` gives it, whichever state that is.
"""

from __future__ import annotations

import asyncio

import redis
from starlette.concurrency import run_in_threadpool

from cep_automation.records.job_state import get_job
from cep_automation.web.errors import ApiError

ENDED = frozenset({"completed", "failed", "dead", "skipped"})
MAX_WAIT_S = 60.0
UNKNOWN_GRACE_S = 5.0  # an id just enqueued may not be recorded yet: wait this long for it to appear
FIRST_POLL_S, LAST_POLL_S = 0.05, 0.5


def wait_seconds(raw: str | None) -> float:
    """The ``wait`` query parameter, in seconds, capped at :data:`MAX_WAIT_S`; 0 when absent."""
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ApiError(422, f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}", errors=[f"wait: got {raw!r}"])
    return min(seconds, MAX_WAIT_S)


async def until_ended(message_id: str, raw_wait: str | None) -> None:
    """Return once the job has ended, is unknown past a short grace, or the wait is over."""
    wait_s = wait_seconds(raw_wait)
    if wait_s <= 0:
        return
    loop = asyncio.get_running_loop()
    started, pause = loop.time(), FIRST_POLL_S
    while True:
        try:
            info = await run_in_threadpool(get_job, message_id)
        except redis.RedisError:
            return  # the answer that follows says Redis is unavailable
        elapsed = loop.time() - started
        if (info is not None and info.state in ENDED) or (info is None and elapsed >= UNKNOWN_GRACE_S):
            return
        if elapsed >= wait_s:
            return
        await asyncio.sleep(min(pause, wait_s - elapsed))
        pause = min(pause * 2, LAST_POLL_S)
