"""Takes a job's declared limits before it runs (actor option ``limits``): over one, the job waits its turn.

Each :class:`~cep_automation.flow.per_key.PerKey` of the actor is tried once, without waiting (a worker thread
is not held): if every one admits the message it runs, holding its concurrency slots until it ends; otherwise
the slots it took are given back and the message is postponed by the time the limit names
(:class:`LimitReached`: ``Retries`` re-enqueues it with that delay and counts no attempt). Place it after
``Idempotency`` (a duplicate is skipped before it takes a slot) and before ``Metrics``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import MiddlewareError
from dramatiq.rate_limits import RateLimitExceeded

from cep_automation.broker import acks
from cep_automation.errors import Postponed
from cep_automation.flow import concurrency
from cep_automation.flow.limits import try_once
from cep_automation.flow.per_key import PerKey

logger = logging.getLogger("cep_automation.middleware.FlowControl")
LEASE_MARGIN_S = 30.0  # a slot outlives its job's time limit by this much, should its worker die holding it


class LimitReached(Postponed, RateLimitExceeded, MiddlewareError):
    """Over a declared limit: the job waits. A ``MiddlewareError`` so that Dramatiq lets it stop the message (it
    logs and ignores any other error of a hook); a ``RateLimitExceeded`` so it logs it quietly; a ``Postponed`` so
    ``Retries`` uses up no attempt."""


class FlowControl(Middleware):
    """Admits a message within its actor's ``limits``, or postpones it; frees its slots when it ends."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[PerKey, str]]] = {}
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {"limits"}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        actor = broker.actors.get(message.actor_name)
        limits: list[PerKey] = list(actor.options.get("limits") or ()) if actor is not None else []
        if not limits:
            return
        lease_s = (actor.options.get("time_limit", 600_000) if actor is not None else 600_000) / 1000 + LEASE_MARGIN_S
        payload = dict(message.kwargs)
        taken: list[tuple[PerKey, str]] = []
        for per_key in limits:
            bucket = per_key.bucket(payload)
            limit = per_key.limit
            if limit.concurrency is not None and limit.lease_s < lease_s:
                limit = replace(limit, lease_s=lease_s)
            wait = try_once(limit, bucket, message.message_id)
            if wait is not None:
                self._free(taken, message.message_id)
                raise LimitReached(f"{per_key.limit.name} {bucket}: over its limit ({per_key.limit.describe()});"
                                   f" waits {wait:.1f} s", retry_after=max(wait, 0.05))
            taken.append((per_key, bucket))
        with self._lock:
            self._held[message.message_id] = taken

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: Any = None) -> None:
        self._end(broker, message)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._end(broker, message)

    def _end(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Free the job's slots: with its ack, in the same round trip, where the broker batches acks."""
        with self._lock:
            taken = self._held.pop(message.message_id, None)
        if not taken:
            return
        slots = [concurrency.holders_key(per_key.limit.name, bucket) for per_key, bucket in taken
                 if per_key.limit.concurrency is not None]
        holder = message.message_id

        def release(pipe: Any) -> None:
            for name in slots:
                pipe.zrem(name, holder)

        if slots and not acks.after_ack(broker, message, release):
            self._free(taken, holder)

    @staticmethod
    def _free(taken: list[tuple[PerKey, str]], holder: str) -> None:
        for per_key, bucket in taken:
            if per_key.limit.concurrency is not None:
                try:
                    concurrency.release(per_key.limit.name, bucket, holder)
                except Exception as exc:  # the lease ends on its own
                    logger.warning("Slot of %s %s not freed (%s); its lease frees it", per_key.limit.name, bucket,
                                   type(exc).__name__)
