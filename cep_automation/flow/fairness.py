"""Fair shares between keys: jobs with a fairness key take turns with other keys' jobs (group round-robin).

A job with a fairness key (a campus, an ad account, an uploader) is not pushed onto its Dramatiq queue when it
is enqueued: it waits in its key's own list (``flow:fair:<queue>:<key>``), and the key joins the queue's ring of
keys. A feeder (:func:`feed`, run by every worker process of the queue, :class:`~cep_automation.middleware.
fairness.FairFeeder`) keeps the Dramatiq queue topped up to a few jobs, taking one job from each key in turn.
So when one key has 2,000 jobs waiting and another sends 20, the 20 are interleaved with the next ones, instead
of waiting behind the 2,000. Everything is in Redis and every move is one Lua script: any number of feeders on
any number of hosts share the work, and a job is always in exactly one place (its key's list, or its queue).
"""

from __future__ import annotations

from typing import Any

from cep_automation.db.redis_client import as_text, get_redis, key, lua

# KEYS: the queue's message hash, the key's list, the ring, the ring's members, the fair queues, the waiting count.
# ARGV: redis id, data, fairness key, queue name.
_ENQUEUE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
if redis.call('SADD', KEYS[4], ARGV[3]) == 1 then redis.call('RPUSH', KEYS[3], ARGV[3]) end
redis.call('SADD', KEYS[5], ARGV[4])
redis.call('INCR', KEYS[6])
return 1
"""

# KEYS: the Dramatiq queue, the ring, the ring's members, the waiting count. ARGV: key prefix of the lists,
# how many jobs the queue may hold ready, the most to move now. Returns how many were moved.
_FEED = """
local room = tonumber(ARGV[2]) - redis.call('LLEN', KEYS[1])
local moved = 0
while moved < math.min(room, tonumber(ARGV[3])) do
  local fair = redis.call('LPOP', KEYS[2])
  if not fair then break end
  local list = ARGV[1] .. fair
  local id = redis.call('LPOP', list)
  if id then
    redis.call('RPUSH', KEYS[1], id)
    redis.call('DECR', KEYS[4])
    moved = moved + 1
  end
  if redis.call('LLEN', list) > 0 then redis.call('RPUSH', KEYS[2], fair) else redis.call('SREM', KEYS[3], fair) end
end
return moved
"""


def _ring(queue: str) -> tuple[str, str, str]:
    base = key("flow", "fair", queue)
    return base + ":ring", base + ":keys", base + ":waiting"


def list_prefix(queue: str) -> str:
    return key("flow", "fair", queue, "by", "")


def enqueue(broker: Any, message: Any, fairness_key: str) -> Any:
    """Enqueue ``message`` behind its key's earlier jobs (Redis broker); the feeder moves it to its queue."""
    import uuid

    message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
    broker.emit_before("enqueue", message, None)
    keys, args = enqueue_call(broker, message, fairness_key)
    script(broker.client)(keys=keys, args=args)
    broker.emit_after("enqueue", message, None)
    return message


def script(client: Any) -> Any:
    """The enqueue script, for callers that put it in their own pipeline (:func:`enqueue_call` for its keys)."""
    return lua(_ENQUEUE, client)


def enqueue_call(broker: Any, message: Any, fairness_key: str) -> tuple[list[str], list[Any]]:
    """Keys and arguments of the enqueue script for ``message`` (which has its ``redis_message_id``)."""
    queue = message.queue_name
    ring, members, waiting = _ring(queue)
    return ([f"{broker.namespace}:{queue}.msgs", list_prefix(queue) + fairness_key, ring, members,
             key("flow", "fair", "queues"), waiting],
            [message.options["redis_message_id"], message.encode(), fairness_key, queue])


def feed(broker: Any, queue: str, *, ready: int, most: int = 100) -> int:
    """Top the Dramatiq queue up to ``ready`` jobs, one key at a time in turn; returns how many moved."""
    ring, members, waiting = _ring(queue)
    return int(lua(_FEED, broker.client)(keys=[f"{broker.namespace}:{queue}", ring, members, waiting],
                                         args=[list_prefix(queue), ready, most]))


def fair_queues() -> set[str]:
    """Queues that have (had) jobs with a fairness key."""
    return {as_text(name) for name in get_redis().smembers(key("flow", "fair", "queues"))}


def waiting(queue: str) -> int:
    """Jobs of ``queue`` waiting in their keys' lists, not yet on the queue."""
    return waiting_in([queue])[queue]


def waiting_in(queues: list[str]) -> dict[str, int]:
    """:func:`waiting` of several queues, in one round trip."""
    counts = get_redis().mget([_ring(queue)[2] for queue in queues]) if queues else []
    return {queue: int(count or 0) for queue, count in zip(queues, counts, strict=True)}
