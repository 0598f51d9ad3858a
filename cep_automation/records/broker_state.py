"""What the broker holds, read in one place: queues, delay queues, acks and heartbeats.

On Redis these keys are Dramatiq's layout, not ours (``<namespace>:<queue>`` is the list of waiting ids,
``<queue>.msgs`` the payloads, ``.DQ`` the delay queue, ``__acks__.<worker>.<queue>`` what a worker
holds, ``__heartbeats__`` a sorted set of worker ids by last beat). On RabbitMQ (``BROKER_URL=amqp://…``)
the counts come from passive queue declarations (``records/rabbitmq_state.py``); what RabbitMQ does not tell
without its management plugin (messages a worker holds, payloads, ages) reads as nothing held. The dashboard,
the health check, ``queue_length``, the alert measures and backpressure read the broker through this module
only, so a Dramatiq upgrade that changes a layout has one place to mend.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name

from cep_automation import options as opt
from cep_automation.db.redis_client import as_text, evalsha, execute_loading, get_redis, key, lua
from cep_automation.queues import POLICIES
from cep_automation.records import job_state, rabbitmq_state
from cep_automation.settings import get_settings

HEARTBEAT_WINDOW_MS = 60_000


def is_redis(broker: Any) -> bool:
    """Whether ``broker`` is Dramatiq's Redis broker, whose layout and scripts this module knows."""
    return isinstance(broker, RedisBroker)


def is_rabbitmq(broker: Any) -> bool:
    """Whether ``broker`` is our namespaced RabbitMQ broker (``BROKER_URL=amqp://…``)."""
    from cep_automation.broker.rabbitmq import NamespacedRabbitmqBroker

    return isinstance(broker, NamespacedRabbitmqBroker)


def _rabbitmq_url() -> str | None:
    """The broker's URL when the settings name RabbitMQ, else None (Redis)."""
    url = get_settings().effective_broker_url
    return url if uses_rabbitmq(url) else None


def queue_names() -> list[str]:
    """Every queue of the policy table, sorted."""
    return sorted({p.queue for p in POLICIES})


def broker_key(*parts: str) -> str:
    """A key of the Dramatiq Redis broker (``<namespace>:<queue>`` …), not one of ours."""
    return ":".join((get_settings().cep_namespace, *parts))


def waiting_and_delayed() -> dict[tuple[str, str], int]:
    """(queue, "waiting"|"delayed") → messages in the broker's queues and delay queues, one round trip on Redis
    (its lists), one connection on RabbitMQ (its ready messages)."""
    if (url := _rabbitmq_url()) is not None:
        return rabbitmq_state.waiting_and_delayed(url, get_settings().cep_namespace, queue_names())
    pipe, wanted = get_redis().pipeline(), []
    for queue in queue_names():
        for state, suffix in (("waiting", ""), ("delayed", ".DQ")):
            pipe.llen(broker_key(queue + suffix))
            wanted.append((queue, state))
    return dict(zip(wanted, pipe.execute(), strict=True))


def queue_depth(broker: Any, queue: str) -> int:
    """Messages in ``queue``'s list and its delay queue's list on ``broker`` (one pipelined round trip): what
    backpressure counts. Messages being processed are not counted; a worker holds few at a time."""
    if is_rabbitmq(broker):
        return rabbitmq_state.queue_depth(broker, queue)
    pipe = broker.client.pipeline(transaction=False)
    pipe.llen(f"{broker.namespace}:{queue}")
    pipe.llen(f"{broker.namespace}:{dq_name(queue)}")
    return int(sum(pipe.execute()))


def workers_seen(exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Broker processes whose heartbeat is under a minute old, with how many messages each is processing.

    On RabbitMQ: the worker processes that noted themselves alive within the minute (:func:`note_worker`);
    how many messages each holds is not known there (``active`` is None)."""
    client, now_ms = get_redis(), int(time.time() * 1000)
    if _rabbitmq_url() is not None:
        return [{"id": worker_id, "last_seen_s": max(0.0, (now_ms - seen) / 1000), "active": None}
                for worker_id, seen in worker_notes().items()
                if seen >= now_ms - HEARTBEAT_WINDOW_MS and worker_id not in exclude]
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
    """(queue, "active"|"delayed") → messages that workers hold: processing, or waiting for their retry time.
    Nothing on RabbitMQ, which tells what its consumers hold only to its management API."""
    if _rabbitmq_url() is not None:
        return {}
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


def queued_payload(queue: str, message_id: str) -> dict[str, Any] | None:
    """The payload of a message still held by the broker (waiting, delayed or being processed); None on
    RabbitMQ, where reading a queued message would take it."""
    if _rabbitmq_url() is not None:
        return None
    client = get_redis()
    for name in (f"{queue}.msgs", f"{queue}.DQ.msgs"):
        raw = client.hget(broker_key(name), message_id) if queue else None
        if raw:
            message = json.loads(raw)
            return {"args": message.get("args", []), "kwargs": message.get("kwargs", {})}
    return None


def dead_workers(broker: Any, queues: set[str] | None = None) -> dict[str, int]:
    """Broker processes whose heartbeat is older than the broker's timeout → how many messages they still hold."""
    client = broker.client
    cutoff = int(time.time() * 1000) - broker.heartbeat_timeout
    dead = [as_text(member) for member in client.zrangebyscore(f"{broker.namespace}:__heartbeats__", 0, cutoff)]
    if not dead:
        return {}
    every = sorted(queues if queues is not None else broker.get_declared_queues() | broker.delay_queues)
    pipe = client.pipeline()
    for worker_id in dead:
        for queue in every:
            pipe.scard(f"{broker.namespace}:__acks__.{worker_id}.{queue}")
    counts = pipe.execute()
    return {worker_id: sum(counts[i * len(every):(i + 1) * len(every)]) for i, worker_id in enumerate(dead)}


# KEYS: the namespace. ARGV: now (ms), heartbeat timeout (ms), then the queues (not delay queues) to look at.
# Marks each message a dead worker holds: its stored data gets the option "cep_requeued" (Dramatiq's encoder
# writes the options just before "message_id", so the option goes in there; JSON keeps the last of two keys).
_MARK_REQUEUED = """
local namespace, now, timeout = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local marked = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', namespace .. ':__heartbeats__', 0, now - timeout)) do
  for i = 3, #ARGV do
    local held = namespace .. ':__acks__.' .. worker .. '.' .. ARGV[i]
    local payloads = namespace .. ':' .. ARGV[i] .. '.msgs'
    for _, id in ipairs(redis.call('SMEMBERS', held)) do
      local data = redis.call('HGET', payloads, id)
      if data then
        local head, tail = string.match(data, '^(.*)(},"message_id":"[^"]*","message_timestamp":[%d%.]+})$')
        if head then
          local prior = string.match(head, ',"cep_requeued":(%d+)$')
          if prior then head = string.sub(head, 1, #head - #(',"cep_requeued":' .. prior)) end
          local times = tonumber(prior or '0') + 1
          redis.call('HSET', payloads, id, head .. ',"cep_requeued":' .. times .. tail)
          marked = marked + 1
        end
      end
    end
  end
end
return marked
"""


def requeue_dead_workers(broker: Any, queues: set[str] | None = None) -> dict[str, int]:
    """Give the messages of dead broker processes back to their queues now; returns what each one held.

    Each message goes back marked (the option :data:`~cep_automation.options.REQUEUED`): its worker may have
    died of it, so :class:`~cep_automation.middleware.DeliveryLimit` counts its next deliveries; a message
    that never met a dead worker costs no count at all. The requeue itself is Dramatiq's own queue
    maintenance (the ``dispatch`` Lua script with its maintenance flag set), run for every queue and delay
    queue. Our brokers never run it at random (``maintenance_chance=0``): a requeue there would go unmarked.
    """
    note_worker(broker)  # the sweep runs in every worker process: its note that the process is alive
    if not is_redis(broker):  # RabbitMQ gives a dead consumer's unacknowledged messages back by itself
        return {}
    held = dead_workers(broker, queues)
    if not held:
        return {}
    every = sorted(queues if queues is not None else broker.get_declared_queues() | broker.delay_queues)
    lua(_MARK_REQUEUED, broker.client)(keys=[broker.namespace], args=[
        int(time.time() * 1000), broker.heartbeat_timeout, *(q for q in every if not q.endswith(".DQ"))])
    run_maintenance(broker, every)
    return held


def run_maintenance(broker: Any, queues: list[str] | None = None) -> None:
    """Dramatiq's maintenance on each queue: dead workers' messages back, expired rejected messages dropped.
    Redis only (RabbitMQ expires ``.XQ`` messages itself)."""
    if not is_redis(broker):
        return
    dispatch = broker.scripts["dispatch"]
    for queue in queues if queues is not None else sorted(broker.get_declared_queues() | broker.delay_queues):
        dispatch(args=["qsize", int(time.time() * 1000), queue, broker.broker_id, broker.heartbeat_timeout,
                       broker.dead_message_ttl, 1, broker._max_unpack_size()], keys=[broker.namespace])


# KEYS: the enqueue claim, the queue's list, the queue's message hash, the ordering key's line, its parked jobs
# (id -> "queue\nredis id") and their messages, the job's state record. ARGV: message id, claim ttl, redis id,
# data, claim (0/1), line (0/1), park when not first (0/1), queue name, record (0/1), record ttl, its fields...
# Unused keys repeat the queue's list. A job with others before it in its line is parked at once: it is fetched
# only when its turn comes. The producer's "queued" record goes in the same script (unless a worker wrote first).
_ENQUEUE_ONCE = """
if ARGV[5] == '1' then
  local holder = redis.call('GET', KEYS[1])
  if holder then return holder end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[6] == '1' and redis.call('RPUSH', KEYS[4], ARGV[1]) > 1 and ARGV[7] == '1' then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[8] .. '\\n' .. ARGV[3])
  redis.call('HSET', KEYS[6], ARGV[1], ARGV[4])
  return false
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[3])
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[7]) == 0 then
  redis.call('HSET', KEYS[7], unpack(ARGV, 11))
  redis.call('EXPIRE', KEYS[7], ARGV[10])
end
return false
"""


def enqueue_once(broker: Any, message: Any, delay: int | None, claim_key: str | None, window_s: int,
                 line_key: str | None = None, *, write_state: bool = False) -> tuple[Any, str | None]:
    """Claim ``claim_key`` and enqueue ``message`` on the Redis broker in one script: both happen or neither
    (and, given ``line_key``, append the message to its ordering key's line in the same script).

    Returns the enqueued message and None, or the message (not enqueued) and the id of the message that holds
    the claim. This is ``RedisBroker.enqueue`` with the claim folded in: a claim taken by an enqueue that then
    failed (Redis crashed between the two) would otherwise make every later try a "duplicate" of a message
    that was never queued.
    """
    message, keys, args = _enqueue_call(broker, message, delay, claim_key, window_s, line_key, write_state)
    holder = lua(_ENQUEUE_ONCE, broker.client)(keys=keys, args=args)
    return _enqueued(broker, message, delay, holder, write_state)


def enqueue_many(broker: Any, items: list[tuple[Any, int | None, str | None, str | None]], window_s: int, *,
                 write_state: bool = True) -> list[tuple[Any, str | None] | Exception]:
    """:func:`enqueue_once` for many messages (``(message, delay, claim_key, line_key)`` each) in one pipeline:
    one round trip instead of one per message. Each script is still atomic on its own; a reply is the
    enqueued message and the claim's holder (None when enqueued), or the error Redis gave for that message."""
    calls = [_enqueue_call(broker, message, delay, claim, window_s, line, write_state)
             for message, delay, claim, line in items]
    script = lua(_ENQUEUE_ONCE, broker.client)

    def build(pipe: Any) -> None:
        for _, keys, args in calls:
            evalsha(pipe, script, keys, args)

    replies = execute_loading(broker.client, build)
    return [reply if isinstance(reply, Exception) else
            _enqueued(broker, message, delay, reply, write_state)
            for (message, _, _), (_, delay, _, _), reply in zip(calls, items, replies, strict=True)]


def _enqueue_call(broker: Any, message: Any, delay: int | None, claim_key: str | None, window_s: int,
                  line_key: str | None, write_state: bool) -> tuple[Any, list[Any], list[Any]]:
    """The message as it is stored and the keys and arguments of its enqueue script (before-enqueue hooks run)."""
    queue_name = message.queue_name
    message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
    if line_key and delay is None:  # the script makes it the head or parks it: it reaches its queue in turn
        message = message.copy(options={opt.IN_TURN: 1})
    if delay is not None:
        queue_name = dq_name(queue_name)
        message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
    broker.emit_before("enqueue", message, delay)
    redis_id, queue_key = message.options["redis_message_id"], f"{broker.namespace}:{queue_name}"
    line = line_key or queue_key
    job_key, ttl, fields = job_state.queued_fields(message) if write_state else (queue_key, 0, [])
    keys = [claim_key or queue_key, queue_key, f"{queue_key}.msgs", line, f"{line}:parked", f"{line}:parked-data",
            job_key]
    args = [message.message_id, window_s, redis_id, message.encode(), 1 if claim_key else 0, 1 if line_key else 0,
            0 if delay is not None else 1, queue_name, 1 if write_state else 0, ttl, *fields]
    return message, keys, args


def _enqueued(broker: Any, message: Any, delay: int | None, holder: Any, write_state: bool) -> tuple[Any, str | None]:
    """After the script: the claim's holder when it was a duplicate, else the after-enqueue hooks."""
    if holder:
        return message, as_text(holder)
    token = job_state.queued_written.set(write_state)
    try:
        broker.emit_after("enqueue", message, delay)
    finally:
        job_state.queued_written.reset(token)
    return message, None


def oldest_waiting_s(queues: list[str], now_ms: int | None = None, sample: int = 10) -> dict[str, float]:
    """Queue → age in seconds of the oldest of the first ``sample`` waiting messages (0 for an empty queue).

    A message's age counts from its enqueue, or from its ``eta`` when it was delayed. Messages a dead worker
    held go back to the end of their queue, hence a sample rather than the head alone. 0 for every queue on
    RabbitMQ: a queued message's time is in its body, and reading it there would take the message.
    """
    if _rabbitmq_url() is not None:
        return {queue: 0.0 for queue in queues}
    client, now_ms = get_redis(), now_ms if now_ms is not None else int(time.time() * 1000)
    pipe = client.pipeline()
    for queue in queues:
        pipe.lrange(broker_key(queue), 0, sample - 1)
    heads = pipe.execute()
    for queue, ids in zip(queues, heads, strict=True):
        pipe.hmget(broker_key(f"{queue}.msgs"), ids) if ids else pipe.echo("")
    ages: dict[str, float] = {}
    for queue, found in zip(queues, pipe.execute(), strict=True):
        stamps = [_enqueued_ms(raw) for raw in (found if isinstance(found, list) else []) if raw]
        ages[queue] = max(0.0, (now_ms - min(stamps)) / 1000) if stamps else 0.0
    return ages


def _enqueued_ms(raw: bytes) -> float:
    message = json.loads(raw)
    return max(float(message.get("message_timestamp", 0)), float(message.get("options", {}).get("eta", 0)))


def note_worker(broker: Any) -> None:
    """Note this worker process alive now (``workers`` hash). Only workers do; Dramatiq's ``__heartbeats__`` also
    lists every process that merely enqueued (the HTTP service, the scheduler), which is no sign of a worker."""
    get_redis().hset(key("workers"), broker.broker_id, int(time.time() * 1000))


def worker_notes() -> dict[str, float]:
    """Worker process id → when it last noted itself alive (ms since the epoch)."""
    return {as_text(worker): float(seen) for worker, seen in get_redis().hgetall(key("workers")).items()}


def forget_workers(worker_ids: list[str]) -> None:
    if worker_ids:
        get_redis().hdel(key("workers"), *worker_ids)


def uses_rabbitmq(broker_url: str) -> bool:
    """Whether ``broker_url`` (``BROKER_URL``, else ``REDIS_URL``) names RabbitMQ."""
    return rabbitmq_state.is_rabbitmq_url(broker_url)


def check_rabbitmq(url: str) -> None:
    """Raises :class:`~cep_automation.errors.ServiceUnavailable` unless the RabbitMQ at ``url`` takes a connection."""
    rabbitmq_state.check(url)
