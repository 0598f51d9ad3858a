"""What waits in flow control, read from Redis: for ``cep-automation flow``, the dashboard and the alerts.

One bounded scan per kind of state: the rates and concurrency limits in use (``flow:rate:*``,
``flow:running:*``), the ordering keys' lines and their parked jobs (``flow:order:*``), and the fair queues'
keys (``flow:fair:*``). Keys are our own (``db/redis_client.key``); nothing here writes.
"""

from __future__ import annotations

from typing import Any

from cep_automation.db.redis_client import as_text, get_redis, key
from cep_automation.flow import fairness

SCAN_LIMIT = 1_000  # entries per kind: a summary, not an inventory


def _scan(prefix: str, limit: int = SCAN_LIMIT) -> list[str]:
    names: list[str] = []
    for name in get_redis().scan_iter(match=prefix + "*", count=500):
        names.append(as_text(name))
        if len(names) >= limit:
            break
    return sorted(names)


def snapshot() -> dict[str, Any]:
    """Limits in use, ordering keys with jobs waiting for their turn, and fair queues with their keys."""
    client = get_redis()
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros / 1000
    rate_prefix, running_prefix = key("flow", "rate", ""), key("flow", "running", "")
    order_prefix = key("flow", "order", "")
    rates, running = _scan(rate_prefix), _scan(running_prefix)
    lines = [name for name in _scan(order_prefix) if not name.endswith((":parked", ":parked-data"))]
    pipe = client.pipeline(transaction=False)
    for name in rates:
        pipe.get(name)
    for name in running:
        pipe.zcount(name, now_ms, "+inf")
    for name in lines:
        pipe.llen(name)
        pipe.hlen(name + ":parked")
    replies = iter(pipe.execute() if rates or running or lines else [])
    out: dict[str, Any] = {"rates": [], "running": [], "ordering": [], "fair": []}
    for name in rates:
        limit, _, bucket = name[len(rate_prefix):].partition(":")
        ahead_ms = max(0.0, float(next(replies) or 0) - now_ms)
        out["rates"].append({"limit": limit, "bucket": bucket, "booked_ahead_s": round(ahead_ms / 1000, 3)})
    for name in running:
        limit, _, bucket = name[len(running_prefix):].partition(":")
        out["running"].append({"limit": limit, "bucket": bucket, "running": int(next(replies))})
    for name in lines:
        out["ordering"].append({"key": name[len(order_prefix):], "in_line": int(next(replies)),
                                "parked": int(next(replies))})
    for queue in sorted(fairness.fair_queues()):
        ring = [as_text(k) for k in client.lrange(key("flow", "fair", queue, "ring"), 0, SCAN_LIMIT - 1)]
        out["fair"].append({"queue": queue, "waiting": fairness.waiting(queue), "keys": len(ring),
                            "next_keys": ring[:10]})
    return out
