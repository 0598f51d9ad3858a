"""A redelivered message's Redis work in one round trip each way: its delivery count and its key's run record.

``DeliveryLimit`` counts the deliveries of a message that a dead worker held (a message whose worker keeps
dying is poison; the requeue sweep marks such messages, so a message delivered for the first time costs
nothing here) and ``Idempotency`` takes the run record of the message's idempotency key. For a marked message
:func:`admit` counts the delivery and — unless the count is over the limit — takes the run record, in one
Lua script, and :func:`settle` forgets the count and writes the run's outcome in one pipeline.

``DeliveryLimit`` (earlier in the stack) makes both calls; it leaves the admission for ``Idempotency`` in a
table of this process keyed by message id (:func:`leave_admission` / :func:`take_admission`), and
``Idempotency`` leaves the outcome for it (:func:`leave_outcome`). Without ``DeliveryLimit`` in the stack,
``Idempotency`` finds no admission and does its own round trips (:mod:`cep_automation.records.idempotency`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from cep_automation.db.redis_client import get_redis, key, lua
from cep_automation.records.idempotency import FAILED_TTL_S, WINDOW_S, run_key, run_record

COUNT_TTL_S = 3 * 24 * 3600  # longer than any redelivery gap; a forgotten count cannot linger for ever

# KEYS: deliveries, run record (or the deliveries key again when the message has no idempotency key)
# ARGV: count ttl, limit, has key (0/1), run record to set, message id, run ttl
# The count starts at the second delivery (the first, before the requeue that marked the message, is not in it).
_ADMIT = """
local n = redis.call('INCR', KEYS[1]) + 1
redis.call('EXPIRE', KEYS[1], ARGV[1])
if n > tonumber(ARGV[2]) or ARGV[3] == '0' then return {n, false} end
local current = redis.call('GET', KEYS[2])
if current then
  local record = cjson.decode(current)
  if record.status == 'completed' then return {n, current} end
  if record.status == 'pending' and record.message_id ~= ARGV[5] then return {n, current} end
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[6])
return {n, false}
"""


@dataclass(frozen=True)
class Admission:
    """What :func:`admit` found: this delivery's number, and the run record that blocks it (None: it runs)."""

    deliveries: int
    blocking: dict[str, Any] | None


def deliveries_key(message_id: str) -> str:
    return key("deliveries", message_id)


def admit(message_id: str, limit: int, idempotency_key: str | None, run_ttl_s: int) -> Admission:
    """Count this delivery of a requeued message; unless it is over ``limit``, take the key's run record for it."""
    script = lua(_ADMIT, get_redis())
    count_key = deliveries_key(message_id)
    keys = [count_key, run_key(idempotency_key) if idempotency_key else count_key]
    reply = script(keys=keys, args=[COUNT_TTL_S, limit, 1 if idempotency_key else 0,
                                    run_record("pending", message_id), message_id, max(1, int(run_ttl_s))])
    deliveries, blocking = int(reply[0]), reply[1]
    return Admission(deliveries, json.loads(blocking) if blocking else None)


def settle(message_id: str, *, forget_count: bool, idempotency_key: str | None = None,
           succeeded: bool | None = None) -> None:
    """Forget the delivery count (the attempt finished) and/or write the run's outcome, in one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    if forget_count:
        pipe.delete(deliveries_key(message_id))
    if idempotency_key is not None and succeeded is not None:
        status, ttl = ("completed", WINDOW_S) if succeeded else ("failed", FAILED_TTL_S)
        pipe.set(run_key(idempotency_key), run_record(status, message_id), ex=ttl)
    if len(pipe):
        pipe.execute()


# Hand-over between the two middlewares, per message being processed in this process.
_lock = threading.Lock()
_admissions: dict[str, Admission] = {}
_outcomes: dict[str, tuple[str, bool]] = {}


def leave_admission(message_id: str, admission: Admission) -> None:
    with _lock:
        _admissions[message_id] = admission


def take_admission(message_id: str) -> Admission | None:
    """The admission ``DeliveryLimit`` made for this message, once; None if it made none."""
    with _lock:
        return _admissions.pop(message_id, None)


def leave_outcome(message_id: str, idempotency_key: str, succeeded: bool) -> None:
    with _lock:
        _outcomes[message_id] = (idempotency_key, succeeded)


def take_outcome(message_id: str) -> tuple[str, bool] | None:
    with _lock:
        return _outcomes.pop(message_id, None)
