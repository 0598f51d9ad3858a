"""Idempotency keys in Redis: one enqueue per key within a window, one run per key.

Two records per key, both ``{namespace}:idem:…``:

* ``sent:<key>`` holds the message id of the first enqueue, for :data:`WINDOW_S`, so a
  second enqueue returns that id instead of queueing again (BullMQ's ``jobId``);
* ``run:<key>`` holds ``{"status": "pending"|"completed"|"failed", "message_id": …}``:
  ``pending`` expires after the actor's time limit (a crashed holder frees it), ``failed``
  lets the retry run, ``completed`` makes every later delivery a skip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from cep_automation.db.redis_client import as_text, get_redis, key, lua

WINDOW_S = 24 * 3600
FAILED_TTL_S = 3600

# Take the run record if it is free, failed, or pending for this very message (a redelivery); and return what the
# hashes KEYS[2..] hold (the effects ledger's first read): {blocking record or '', hash, ...}.
_ACQUIRE = """
local blocking = ''
local current = redis.call('GET', KEYS[1])
if current then
  local record = cjson.decode(current)
  if record.status == 'completed' or (record.status == 'pending' and record.message_id ~= ARGV[2]) then
    blocking = current
  end
end
if blocking == '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) end
local reply = {blocking}
for i = 2, #KEYS do reply[i] = redis.call('HGETALL', KEYS[i]) end
return reply
"""


def run_record(status: str, message_id: str) -> str:
    return json.dumps({"status": status, "message_id": message_id, "at": round(time.time(), 3)})


def sent_key(idempotency_key: str) -> str:
    return key("idem", "sent", idempotency_key)


def claim_enqueue(idempotency_key: str, message_id: str, window_s: int = WINDOW_S) -> str | None:
    """Claim the key for this enqueue; None if claimed, else the message id that holds it."""
    client = get_redis()
    name = sent_key(idempotency_key)
    if client.set(name, message_id, nx=True, ex=window_s):
        return None
    holder = client.get(name)
    return as_text(holder) if holder else None


def release_enqueue(idempotency_key: str, message_id: str) -> None:
    """Give the enqueue claim back (the enqueue itself failed)."""
    client = get_redis()
    name = sent_key(idempotency_key)
    if client.get(name) == message_id.encode():
        client.delete(name)


def run_key(idempotency_key: str) -> str:
    return key("idem", "run", idempotency_key)


def acquire_run(idempotency_key: str, message_id: str, ttl_s: int) -> dict[str, Any] | None:
    """Mark the key pending for this message; None if acquired, else the record that blocks it."""
    return acquire_run_reading(idempotency_key, message_id, ttl_s, [])[0]


def acquire_run_reading(idempotency_key: str, message_id: str, ttl_s: int,
                        hashes: list[str]) -> tuple[dict[str, Any] | None, list[dict[bytes, bytes]]]:
    """:func:`acquire_run`, reading ``hashes`` in the same round trip (the effects ledger's first read)."""
    script = lua(_ACQUIRE, get_redis())
    blocking, *found = script(keys=[run_key(idempotency_key), *hashes],
                              args=[run_record("pending", message_id), message_id, max(1, int(ttl_s))])
    pairs = [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in found]
    return (json.loads(blocking) if blocking else None), pairs


def finish_run(idempotency_key: str, message_id: str, succeeded: bool) -> None:
    """Completed keys stay for the window; failed ones are released so a retry can run."""
    finish_run_op(idempotency_key, message_id, succeeded)(get_redis())


def finish_run_op(idempotency_key: str, message_id: str, succeeded: bool) -> Callable[[Any], None]:
    """:func:`finish_run` as an operation on a client or pipeline (to send it with the message's ack)."""
    status, ttl = ("completed", WINDOW_S) if succeeded else ("failed", FAILED_TTL_S)
    name, record = run_key(idempotency_key), run_record(status, message_id)
    return lambda client: client.set(name, record, ex=ttl)


def run_state(idempotency_key: str) -> dict[str, Any] | None:
    raw = get_redis().get(run_key(idempotency_key))
    return json.loads(raw) if raw else None
