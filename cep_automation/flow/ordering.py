"""Ordering keys: jobs with the same key run one at a time, in the order they were enqueued, on every host.

Each key has a line in Redis (``flow:order:<key>``, a list of message ids) that the enqueue appends to in the
same Lua script as the enqueue itself (:func:`cep_automation.records.broker_state.enqueue_once`), so a job is
in its line if and only if it is in its queue. A job runs only at the head of its line. One fetched out of turn
is *parked* (its message kept under the key, then acked) instead of being polled for; when the head ends —
completed, or dead-lettered — :func:`release` takes it off the line and puts the new head, if parked, back on its
queue, in one script. A head that fails and is retried stays at the head: the jobs behind it wait until it
succeeds or is dead-lettered. A message not in its line (sent before the key existed, or the line lost with
Redis) runs: an ordering key never blocks a job for ever.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from cep_automation import options as opt
from cep_automation.db.redis_client import evalsha, get_redis, key, lua

# KEYS: line, parked (id -> "queue\\nredis id"), parked data (id -> message). ARGV: message id, queue, redis id, data.
# Returns 1: run now (its turn, or not in the line); 0: parked until its turn.
_TURN = """
local head = redis.call('LINDEX', KEYS[1], 0)
if head == ARGV[1] or not redis.call('LPOS', KEYS[1], ARGV[1]) then return 1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '\\n' .. ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 0
"""

# KEYS: line, parked, parked data. ARGV: message id, namespace. Returns the id put back on its queue, or false.
_RELEASE = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then
  redis.call('LREM', KEYS[1], 1, ARGV[1])
  return false
end
redis.call('LPOP', KEYS[1])
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return false end
local where = redis.call('HGET', KEYS[2], head)
if not where then return false end
local data = redis.call('HGET', KEYS[3], head)
redis.call('HDEL', KEYS[2], head)
redis.call('HDEL', KEYS[3], head)
local newline = string.find(where, '\\n', 1, true)
local queue, rid = string.sub(where, 1, newline - 1), string.sub(where, newline + 1)
redis.call('HSET', ARGV[2] .. ':' .. queue .. '.msgs', rid, data)
redis.call('LPUSH', ARGV[2] .. ':' .. queue, rid)  -- at the front: it has waited its turn already
return head
"""


def line_key(ordering_key: str) -> str:
    return key("flow", "order", ordering_key)


def _keys(ordering_key: str) -> list[str]:
    line = line_key(ordering_key)
    return [line, line + ":parked", line + ":parked-data"]


def take_turn(ordering_key: str, message: Any, queue_name: str) -> bool:
    """True if ``message`` may run now; else it is parked (kept whole) until the job before it ends."""
    parked = message.copy(options={"redis_message_id": str(uuid.uuid4())})
    parked.options.pop(opt.REQUEUED, None)  # parking is not a crash: its next delivery is a first one
    reply = lua(_TURN, get_redis())(keys=_keys(ordering_key), args=[
        message.message_id, queue_name, parked.options["redis_message_id"], parked.encode()])
    return bool(int(reply))


def release(ordering_key: str, message_id: str, namespace: str) -> str | None:
    """``message_id`` ended: off its line; the next job, if parked, goes back on its queue. Returns its id."""
    reply = lua(_RELEASE, get_redis())(keys=_keys(ordering_key), args=[message_id, namespace])
    return reply.decode() if isinstance(reply, bytes) else None


def release_op(ordering_key: str, message_id: str, namespace: str) -> Callable[[Any], None]:
    """:func:`release` as an operation on a pipeline (to send it with the message's ack)."""
    script, keys = lua(_RELEASE, get_redis()), _keys(ordering_key)
    return lambda pipe: evalsha(pipe, script, keys, [message_id, namespace])


def join_line(ordering_key: str, message_id: str) -> None:
    """Append to the key's line (brokers whose enqueue cannot do it in the same script: RabbitMQ)."""
    get_redis().rpush(line_key(ordering_key), message_id)


def leave_line(ordering_key: str, message_id: str) -> None:
    """Take a message that was never enqueued off its line (its enqueue failed after :func:`join_line`)."""
    get_redis().lrem(line_key(ordering_key), 1, message_id)


def waiting(ordering_key: str) -> int:
    """Jobs in the key's line, the running or next one included (for the dashboard and the CLI)."""
    return int(get_redis().llen(line_key(ordering_key)))
