"""What ``alerts.check`` remembers between two runs, in Redis: each rule's state, and the workers it has seen.

``alerts:state`` is a hash, rule → JSON ``{"since": …, "fired": …, "value": …}``: a rule whose condition holds
is *pending* from ``since``, *fired* once its alert was sent; it is deleted when the condition clears (after
the "resolved" message when it had fired). ``alerts:workers`` is a hash, worker id → when it was last seen
alive (ms), so a worker whose heartbeat stopped is still known after Dramatiq's maintenance forgot it.
No expiry: the state is a handful of small fields, and a lost state would re-send every firing alert.
"""

from __future__ import annotations

import json
from typing import Any

from cep_automation.db.redis_client import as_text, get_redis, key

FORGET_WORKERS_AFTER_MS = 24 * 3600 * 1000


def rule_states() -> dict[str, dict[str, Any]]:
    """Every pending or fired rule → its state."""
    raw = get_redis().hgetall(key("alerts", "state"))
    return {as_text(rule): json.loads(value) for rule, value in raw.items()}


def save_rule(rule: str, state: dict[str, Any]) -> None:
    get_redis().hset(key("alerts", "state"), rule, json.dumps(state))


def clear_rule(rule: str) -> None:
    get_redis().hdel(key("alerts", "state"), rule)


def remembered_workers() -> dict[str, float]:
    """Worker id → when ``alerts.check`` last saw it alive (ms)."""
    raw = get_redis().hgetall(key("alerts", "workers"))
    return {as_text(worker): float(seen) for worker, seen in raw.items()}


def remember_workers(alive: dict[str, float], forget: list[str]) -> None:
    """Note the workers seen alive now and drop those replaced or gone for too long."""
    pipe = get_redis().pipeline()
    if alive:
        pipe.hset(key("alerts", "workers"), mapping={worker: str(seen) for worker, seen in alive.items()})
    if forget:
        pipe.hdel(key("alerts", "workers"), *forget)
    pipe.execute()


def try_lock(owner: str, ttl_s: int) -> bool:
    """Take ``lock:alerts.check`` (one check at a time, whoever sent it); False when another holds it."""
    return bool(get_redis().set(key("lock", "alerts.check"), owner, nx=True, ex=ttl_s))


def unlock(owner: str) -> None:
    client = get_redis()
    if client.get(key("lock", "alerts.check")) == owner.encode():
        client.delete(key("lock", "alerts.check"))
