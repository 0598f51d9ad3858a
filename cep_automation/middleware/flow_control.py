"""Takes a job's declared limits before it runs (actor option ``limits``): over one, the job waits its turn.

Each :class:`~cep_automation.flow.per_key.PerKey` of the actor is tried once, without waiting (a worker thread
is not held): if every one admits the message it runs, holding its concurrency slots until it ends; otherwise
the slots it took are given back and the message is postponed by the time the limit names
(:class:`LimitReached`: ``Retries`` re-enqueues it with that delay and counts no attempt). Place it after
``Idempotency`` (a duplicate is skipped before it takes a slot) and before ``Metrics``. A concurrency slot whose
bucket has room is handed to this process's next job of that bucket instead of being freed and taken again
(:mod:`cep_automation.flow.spare_slots`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import MiddlewareError
from dramatiq.rate_limits import RateLimitExceeded

from cep_automation.broker import acks
from cep_automation.db.redis_client import get_redis
from cep_automation.errors import Postponed
from cep_automation.flow import concurrency
from cep_automation.flow.limits import RECHECK_S, Limit, try_once
from cep_automation.flow.per_key import PerKey
from cep_automation.flow.spare_slots import Slot, SpareSlots, is_roomy
from cep_automation.records import metrics

logger = logging.getLogger("cep_automation.middleware.FlowControl")
LEASE_MARGIN_S = 30.0  # a slot outlives its job's time limit by this much, should its worker die holding it


class LimitReached(Postponed, RateLimitExceeded, MiddlewareError):
    """Over a declared limit: the job waits. A ``MiddlewareError`` so that Dramatiq lets it stop the message (it
    logs and ignores any other error of a hook); a ``RateLimitExceeded`` so it logs it quietly; a ``Postponed`` so
    ``Retries`` uses up no attempt."""


class FlowControl(Middleware):
    """Admits a message within its actor's ``limits``, or postpones it; frees its slots when it ends."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[PerKey, str, Slot | None]]] = {}
        self._lock = threading.Lock()
        self.spare = SpareSlots()  # concurrency slots handed from a finished job to the next of its bucket

    @property
    def actor_options(self) -> set[str]:
        return {"limits"}

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.spare.free_all()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        actor = broker.actors.get(message.actor_name)
        limits: list[PerKey] = list(actor.options.get("limits") or ()) if actor is not None else []
        if not limits:
            return
        lease_s = (actor.options.get("time_limit", 600_000) if actor is not None else 600_000) / 1000 + LEASE_MARGIN_S
        payload = dict(message.kwargs)
        taken: list[tuple[PerKey, str, Slot | None]] = []
        for per_key in limits:
            bucket = per_key.bucket(payload)
            limit = per_key.limit
            if limit.concurrency is not None and limit.lease_s < lease_s:
                limit = replace(limit, lease_s=lease_s)
            slot, wait = self._take(limit, bucket, message.message_id)
            if wait is not None:
                self._free(taken, message.message_id)
                metrics.observe_limit_wait(per_key.limit.name, "postponed", max(wait, 0.05))
                raise LimitReached(f"{per_key.limit.name} {bucket}: over its limit ({per_key.limit.describe()});"
                                   f" waits {wait:.1f} s", retry_after=max(wait, 0.05))
            taken.append((per_key, bucket, slot))
        with self._lock:
            self._held[message.message_id] = taken

    def _take(self, limit: Limit, bucket: str, holder: str) -> tuple[Slot | None, float | None]:
        """(the concurrency slot taken, if the limit is one alone; None) or (None, seconds to wait)."""
        if limit.concurrency is None or limit.rate is not None:  # a rate counts every job: nothing to hand over
            return None, try_once(limit, bucket, holder)
        slot = self.spare.take(limit.name, bucket)
        if slot is not None:
            return slot, None
        got = concurrency.take(limit.name, bucket, holder, most=limit.concurrency, lease_s=limit.lease_s)
        if not got.taken:  # a holder usually ends long before its lease does
            return None, min(got.wait_s, RECHECK_S)
        return Slot(limit.name, bucket, holder, time.monotonic(), is_roomy(got.holders, limit.concurrency)), None

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: Any = None) -> None:
        self._end(broker, message)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._end(broker, message)

    def _end(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Keep the job's slots for the next job of their bucket, or free them: with its ack, in the same round
        trip, where the broker batches acks."""
        with self._lock:
            taken = self._held.pop(message.message_id, None)
        if not taken:
            return
        freed = self._to_free(taken, message.message_id)

        def release(pipe: Any) -> None:
            for name, holder in freed:
                pipe.zrem(name, holder)

        if freed and not acks.after_ack(broker, message, release):
            for name, holder in freed:
                self._release(name, holder)

    def _free(self, taken: list[tuple[PerKey, str, Slot | None]], holder: str) -> None:
        """A job postponed after taking some of its slots: they go back (kept for the next job, or freed)."""
        for name, slot_holder in self._to_free(taken, holder):
            self._release(name, slot_holder)

    def _to_free(self, taken: list[tuple[PerKey, str, Slot | None]], holder: str) -> list[tuple[str, str]]:
        """The (holders key, holder) of each concurrency slot to free in Redis; a roomy one is kept instead."""
        return [(concurrency.holders_key(per_key.limit.name, bucket), slot.holder if slot else holder)
                for per_key, bucket, slot in taken
                if per_key.limit.concurrency is not None and not (slot and self.spare.keep(slot))]

    @staticmethod
    def _release(name: str, holder: str) -> None:
        try:
            get_redis().zrem(name, holder)
        except Exception as exc:  # the lease ends on its own
            logger.warning("Slot %s of %s not freed (%s); its lease frees it", holder, name, type(exc).__name__)
