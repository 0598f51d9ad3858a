"""At most N holders of a key at once, across processes and hosts: leases in a Redis sorted set.

Each holder is a member scored by its lease's end. Taking a slot drops expired leases first, so a holder that
died (``kill -9``, a lost host) frees its slot when its lease ends instead of never. The lease should outlast
the work it guards (an HTTP call's timeout, a job's time limit); :func:`release` frees it at once.
"""

from __future__ import annotations

from typing import NamedTuple

from cep_automation.db.redis_client import get_redis, key, lua

# KEYS: the holders. ARGV: most holders, holder id, lease ms.
# Returns {admitted, wait ms (until a lease ends)[, holders now, this one included]}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, string.format('%.3f', tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease) + 1000)
return {1, '0', redis.call('ZCARD', KEYS[1])}
"""


def holders_key(name: str, bucket: str) -> str:
    return key("flow", "running", name, bucket)


class Taken(NamedTuple):
    taken: bool
    wait_s: float  # when not taken: until a lease ends
    holders: int  # when taken: how many hold a slot now, this one included


def take(name: str, bucket: str, holder: str, *, most: int, lease_s: float) -> Taken:
    """Take one of ``most`` slots of ``bucket`` for ``holder`` (again: renew it)."""
    if most < 1 or lease_s <= 0:
        raise ValueError(f"limit {name!r}: at least one holder and a positive lease, got {most}, {lease_s} s")
    reply = lua(_TAKE, get_redis())(keys=[holders_key(name, bucket)], args=[most, holder, lease_s * 1000])
    return Taken(bool(int(reply[0])), float(reply[1]) / 1000, int(reply[2]) if len(reply) > 2 else 0)


def try_take(name: str, bucket: str, holder: str, *, most: int, lease_s: float) -> tuple[bool, float]:
    """:func:`take`: (taken, seconds until one may free)."""
    taken = take(name, bucket, holder, most=most, lease_s=lease_s)
    return taken.taken, taken.wait_s


def release(name: str, bucket: str, holder: str) -> None:
    get_redis().zrem(holders_key(name, bucket), holder)


def running(name: str, bucket: str) -> int:
    """Holders whose lease has not ended, by Redis's clock (for the dashboard and the CLI)."""
    client = get_redis()
    seconds, micros = client.time()
    return int(client.zcount(holders_key(name, bucket), seconds * 1000 + micros / 1000, "+inf"))
