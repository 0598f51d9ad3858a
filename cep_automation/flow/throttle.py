"""A rate shared by every process on every host: GCRA on Redis, one round trip per try.

The generic cell rate algorithm (what Inngest's throttle and many API gateways use) keeps one number per key,
the theoretical arrival time (TAT) of the next request. With an emission interval ``T = period / rate`` and a
burst of ``b``, a request costing ``n`` is admitted when ``max(TAT, now) + n·T - b·T <= now`` and moves the TAT
forward by ``n·T``. Unlike Dramatiq's window limiter (a WATCH/MULTI transaction that retries under contention,
and lets twice the rate through across a window edge), it is one Lua call, spaces admissions evenly, and says
exactly how long to wait. The clock is Redis's (``TIME``), so hosts with skewed clocks share one limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from cep_automation.db.redis_client import get_redis, key, lua

# KEYS: the key's TAT. ARGV: emission interval (ms), burst, cost. Returns {admitted, wait ms, TAT}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, string.format('%.3f', allow_at - now), string.format('%.3f', tat)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, '0', string.format('%.3f', new_tat)}
"""


@dataclass(frozen=True)
class Verdict:
    """One try: admitted or not, how long until it would be (seconds), and the key's TAT after it (ms)."""

    admitted: bool
    wait_s: float
    tat_ms: float


def try_rate(name: str, bucket: str, *, rate: float, period_s: float, burst: int = 1, cost: int = 1) -> Verdict:
    """Take ``cost`` units of ``rate`` per ``period_s`` for ``bucket`` of limit ``name``, if they are free now."""
    if rate <= 0 or period_s <= 0:
        raise ValueError(f"limit {name!r}: rate and period must be positive, got {rate} per {period_s} s")
    if not 1 <= cost <= burst:
        raise ValueError(f"limit {name!r}: a cost of {cost} can never pass a burst of {burst}")
    reply = lua(_GCRA, get_redis())(keys=[key("flow", "rate", name, bucket)],
                                    args=[period_s * 1000 / rate, burst, cost])
    return Verdict(bool(int(reply[0])), float(reply[1]) / 1000, float(reply[2]))
