"""Erasing a person from our Redis namespace: job state and logs, held effects, spools, idempotency records
and queued messages. Every key is read; a value that mentions them is rewritten (only if nobody changed it
meanwhile: WATCH), a key whose *name* mentions them (an idempotency key made from an email) is deleted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import redis

from cep_automation.db.redis_client import get_redis, key
from cep_automation.gdpr.needles import Needles

SCAN_COUNT = 500


@dataclass
class RedisScrub:
    """What a pass over the namespace changed."""

    keys_rewritten: int = 0
    keys_deleted: int = 0
    unchanged_races: list[str] = field(default_factory=list)

    def asdict(self) -> dict[str, Any]:
        return {"keys_rewritten": self.keys_rewritten, "keys_deleted": self.keys_deleted}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", errors="surrogateescape")


def _values(pipe: Any, name: bytes, kind: str) -> list[bytes]:
    if kind == "string":
        value = pipe.get(name)
        return [] if value is None else [value]
    if kind == "hash":
        return [v for pair in pipe.hgetall(name).items() for v in pair]
    if kind == "list":
        return list(pipe.lrange(name, 0, -1))
    if kind == "set":
        return list(pipe.smembers(name))
    if kind == "zset":
        return list(pipe.zrange(name, 0, -1))
    return []


def _rewrite(pipe: Any, name: bytes, kind: str, needles: Needles, linked: bool) -> bool:
    """Queue the scrubbed value of one key on ``pipe`` (in MULTI); False when nothing mentions the person.

    A key is linked to the person when its name, or any of its values, carries one of their lead ids: then
    their name is scrubbed in every value of it (a job's log line names the lead without its id)."""
    linked = linked or any(_mentions_lead(needles, _text(v)) for v in _values(pipe, name, kind))

    def clean(value: bytes) -> bytes:
        return _bytes(needles.scrub(_text(value), linked=linked))

    if kind == "string":
        old = pipe.get(name)
        if old is None or clean(old) == old:
            return False
        pipe.multi()
        pipe.set(name, clean(old), keepttl=True)
    elif kind == "hash":
        changed = {f: clean(v) for f, v in pipe.hgetall(name).items() if clean(v) != v}
        if not changed:
            return False
        pipe.multi()
        pipe.hset(name, mapping=changed)
    elif kind == "list":
        changed_at = [(i, clean(v)) for i, v in enumerate(pipe.lrange(name, 0, -1)) if clean(v) != v]
        if not changed_at:
            return False
        pipe.multi()
        for index, value in changed_at:
            pipe.lset(name, index, value)
    elif kind in ("set", "zset"):
        return _rewrite_members(pipe, name, kind, clean)
    else:
        return False
    return True


def _rewrite_members(pipe: Any, name: bytes, kind: str, clean: Any) -> bool:
    if kind == "set":
        pairs = [(m, None) for m in pipe.smembers(name)]
    else:
        pairs = list(pipe.zrange(name, 0, -1, withscores=True))
    changed = [(member, score, clean(member)) for member, score in pairs if clean(member) != member]
    if not changed:
        return False
    pipe.multi()
    for member, score, new in changed:
        if kind == "set":
            pipe.srem(name, member)
            pipe.sadd(name, new)
        else:
            pipe.zrem(name, member)
            pipe.zadd(name, {new: score})
    return True


def _scrub_key(client: redis.Redis, name: bytes, needles: Needles, result: RedisScrub) -> None:
    text_name = _text(name)
    if needles.scrub(text_name, linked=True) != text_name:
        result.keys_deleted += client.delete(name)
        return
    linked = _mentions_lead(needles, text_name) or _job_mentions_lead(client, text_name, needles)
    with client.pipeline() as pipe:
        try:
            pipe.watch(name)  # type: ignore[no-untyped-call]  # redis-py leaves watch() unannotated
            kind = _text(pipe.type(name))
            if _rewrite(pipe, name, kind, needles, linked):
                pipe.execute()
                result.keys_rewritten += 1
        except redis.WatchError:  # changed while we read it: a second pass gets it
            result.unchanged_races.append(text_name)


def _job_mentions_lead(client: redis.Redis, name: str, needles: Needles) -> bool:
    """A job's log (``job:<id>:log``) is linked to the lead its job record (``job:<id>``) names."""
    if not name.endswith(":log") or not needles.lead_ids:
        return False
    record = client.hgetall(name.removesuffix(":log"))
    return any(_mentions_lead(needles, _text(v)) for v in record.values())


def _mentions_lead(needles: Needles, text: str) -> bool:
    return bool(needles.lead_ids and re.search(needles.lead_ids, text, flags=re.I))


def erase_from_redis(needles: Needles, client: redis.Redis | None = None) -> RedisScrub:
    """Scrub every key of the namespace; keys that changed under us are tried once more."""
    client = client or get_redis()
    result = RedisScrub()
    for name in client.scan_iter(match=key("*"), count=SCAN_COUNT):
        _scrub_key(client, name, needles, result)
    retry, result.unchanged_races = result.unchanged_races, []
    for text_name in retry:
        _scrub_key(client, _bytes(text_name), needles, result)
    return result
