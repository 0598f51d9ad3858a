"""Backpressure at enqueue: each queue's depth against its soft and hard limits (``queues.QUEUE_RULES``).

Below the soft limit a job goes in as asked. From the soft limit on it is still accepted, deferred by the
queue's ``retry_after_s`` (the HTTP ingress answers 429 so the caller slows down). From the hard limit on it
is refused with :class:`~cep_automation.errors.QueueFull`, which names the queue and its depth.

The depth is read from the broker (``records/broker_state.py``: Redis's lists in one pipelined round trip,
RabbitMQ's ready messages by passive declarations), and trusted for ``CEP_QUEUE_DEPTH_CACHE_MS`` (1 s) per queue
and process, counting this process's own enqueues meanwhile: a hot enqueue path pays a round trip to the broker
about once a second per queue, not per message. The price is that concurrent producers may overshoot a limit
by what they send within that second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from cep_automation.errors import QueueFull
from cep_automation.queues import QueueRules, queue_rules
from cep_automation.records import broker_state
from cep_automation.settings import get_settings


@dataclass(frozen=True)
class Admission:
    """What backpressure decided for one enqueue: ``defer_ms`` > 0 past the soft limit."""

    depth: int
    rules: QueueRules
    defer_ms: int = 0

    @property
    def retry_after_s(self) -> int:
        return self.rules.retry_after_s


_depths: dict[tuple[str, str], tuple[float, int]] = {}  # (namespace, queue) → (read at, depth)
_lock = threading.Lock()


def depth(broker: Any, queue: str) -> int:
    """``queue``'s depth, read at most once per ``CEP_QUEUE_DEPTH_CACHE_MS`` in this process."""
    ttl_s = get_settings().cep_queue_depth_cache_ms / 1000
    where, now = (broker.namespace, queue), time.monotonic()
    cached = _depths.get(where)
    if cached is not None and now - cached[0] < ttl_s:
        return cached[1]
    value = broker_state.queue_depth(broker, queue)
    with _lock:
        _depths[where] = (now, value)
    return value


def counted(broker: Any, queue: str) -> None:
    """Count one enqueue of this process into the cached depth, so a burst from here is seen at once."""
    where = (broker.namespace, queue)
    with _lock:
        cached = _depths.get(where)
        if cached is not None:
            _depths[where] = (cached[0], cached[1] + 1)


def admit(broker: Any, queue: str) -> Admission | None:
    """Check ``queue`` on ``broker``; None on the stub broker, which has no queues to count.

    Raises:
      QueueFull: the queue is at its hard limit.
    """
    if not (broker_state.is_redis(broker) or broker_state.is_rabbitmq(broker)):
        return None
    rules = queue_rules(queue, get_settings().cep_queue_limits)
    current = depth(broker, queue)
    if current >= rules.hard_limit:
        raise QueueFull(queue, current, rules.hard_limit, rules.retry_after_s)
    if current >= rules.soft_limit:
        return Admission(current, rules, defer_ms=rules.retry_after_s * 1000)
    return Admission(current, rules)


def forget() -> None:
    """Drop every cached depth (a test, or a process that just emptied a queue)."""
    with _lock:
        _depths.clear()
