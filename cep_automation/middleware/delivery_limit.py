"""Dead-letters a message that keeps killing its worker process (a poison message) instead of looping for ever.

A message whose worker dies mid-run (``os._exit``, a segfault in a C extension, the OOM killer) is never
acked, so Dramatiq's Redis broker puts it back on the queue once that worker's heartbeat is stale, and the
next worker dies on it too. Retries cannot stop this: no exception ever reaches them.

The requeue sweep (:func:`cep_automation.records.broker_state.requeue_dead_workers`) marks every message it
takes back from a dead worker (the option ``cep_requeued``). :class:`DeliveryLimit` counts the deliveries of
marked messages in Redis (``{namespace}:deliveries:<id>``) when processing starts, and forgets the count as
soon as an attempt ends normally — completed, failed, retried or skipped — so only deliveries that never
finished add up. Past ``max_deliveries`` the message is failed without running: it goes to the dead letters
with the error type ``PoisonMessage``. A message no dead worker ever held is not counted at all: the first
delivery costs no round trip (it is delivery number one by definition).

Place it after ``PayloadValidation`` (an invalid payload never runs, so it needs no count) and before
``Idempotency`` (a poison message must not take an idempotency key) and ``Retries``. It also takes the
message's idempotency key for ``Idempotency`` in the same round trip, and writes the run's outcome with the
count's removal (:mod:`cep_automation.records.delivery`): one Redis round trip before a requeued message, one
after; none for the others.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation import options as opt
from cep_automation.records import delivery
from cep_automation.records.delivery import COUNT_TTL_S, deliveries_key

logger = logging.getLogger("cep_automation.middleware.DeliveryLimit")

DEFAULT_MAX_DELIVERIES = 5
ERROR_TYPE = "PoisonMessage"
__all__ = ["COUNT_TTL_S", "DEFAULT_MAX_DELIVERIES", "ERROR_TYPE", "DeliveryLimit", "deliveries_key"]


class DeliveryLimit(Middleware):
    """Fails a message delivered more than ``max_deliveries`` times without an attempt ever finishing.

    Parameters:
      max_deliveries: the default limit; an actor may set its own with the actor option of the same name.
    Raises:
      SkipMessage: from ``before_process_message`` when the limit is passed, after ``message.fail()``,
        so the broker rejects the message and :class:`~cep_automation.middleware.DeadLetters` records it.
    """

    def __init__(self, *, max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
        self.max_deliveries = max_deliveries
        self._settled: set[str] = set()  # retries whose delivery was settled when they were enqueued
        self._counted: set[str] = set()  # requeued messages being processed, whose count is to be forgotten
        self._takes_keys: bool | None = None  # whether Idempotency is in the stack (decided at the first message)

    @property
    def actor_options(self) -> set[str]:
        return {"max_deliveries"}

    def limit_for(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> int:
        actor = broker.actors.get(message.actor_name)
        limit = actor.options.get("max_deliveries") if actor is not None else None
        return int(limit) if limit else self.max_deliveries

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if opt.REQUEUED not in message.options:  # no dead worker ever held it: nothing to count
            return
        limit = self.limit_for(broker, message)
        if self._takes_keys is None:
            from cep_automation.middleware.idempotency import Idempotency

            self._takes_keys = any(isinstance(m, Idempotency) for m in broker.middleware)
        idem_key = message.options.get(opt.IDEMPOTENCY_KEY) if self._takes_keys else None
        try:
            admission = delivery.admit(message.message_id, limit, idem_key,
                                       run_ttl_s(broker, message) if idem_key else 0)
        except redis.RedisError as exc:  # cannot count: the message runs (fail open); Idempotency tries itself
            logger.warning("Deliveries of %s not counted (Redis unavailable: %s)", message.message_id,
                           type(exc).__name__)
            return
        self._counted.add(message.message_id)
        if admission.deliveries <= limit:
            if idem_key:
                delivery.leave_admission(message.message_id, admission)
            return
        deliveries = admission.deliveries
        text = (f"delivered {deliveries} times and no attempt ever finished (its worker process died each time); "
                f"not run again after {limit} deliveries")
        logger.error("Message %s (%s) is poison: %s", message.message_id, message.actor_name, text)
        message.options[opt.ERROR] = {"type": ERROR_TYPE, "message": text, "deliveries": deliveries}
        message.fail()
        raise SkipMessage(text)

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # A retry being enqueued: the attempt that failed did finish, and the retry starts unmarked. For a
        # requeued message, forget its delivery count now, before the retry can be fetched by another thread
        # (this middleware's after-hooks run after Retries' enqueue), and release its idempotency key (failed)
        # in the same round trip.
        if message.options.get("retries") and message.options.pop(opt.REQUEUED, None) is not None:
            failed_key = message.options.get(opt.IDEMPOTENCY_KEY)
            self._settle(message.message_id, failed_key, False if failed_key else None)
            self._settled.add(message.message_id)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        self._finish(message.message_id)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._finish(message.message_id)

    def _finish(self, message_id: str) -> None:
        """The attempt ended: forget the count and write the run's outcome left by Idempotency, in one trip."""
        if message_id not in self._counted:  # never requeued: no count, and Idempotency wrote its own outcome
            return
        self._counted.discard(message_id)
        outcome = delivery.take_outcome(message_id)
        if message_id in self._settled:  # a retry: done in before_enqueue
            self._settled.discard(message_id)
            return
        idem_key, succeeded = outcome if outcome else (None, None)
        self._settle(message_id, idem_key, succeeded)

    @staticmethod
    def _settle(message_id: str, idem_key: str | None, succeeded: bool | None) -> None:
        try:
            delivery.settle(message_id, forget_count=True, idempotency_key=idem_key, succeeded=succeeded)
        except redis.RedisError as exc:  # the count expires on its own; a pending record after the time limit
            logger.warning("Delivery of %s not settled (Redis unavailable: %s)", message_id, type(exc).__name__)


def run_ttl_s(broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> int:
    """How long a pending run record holds the key: the actor's time limit and a margin (a crashed holder)."""
    actor = broker.actors.get(message.actor_name)
    time_limit_ms = actor.options.get("time_limit", 600_000) if actor is not None else 600_000
    return int(time_limit_ms) // 1000 + 5
