"""Dead-letters a message that keeps killing its worker process (a poison message) instead of looping for ever.

A message whose worker dies mid-run (``os._exit``, a segfault in a C extension, the OOM killer) is never
acked, so Dramatiq's Redis broker puts it back on the queue once that worker's heartbeat is stale, and the
next worker dies on it too. Retries cannot stop this: no exception ever reaches them.

:class:`DeliveryLimit` counts the deliveries of each message id in Redis (``{namespace}:deliveries:<id>``)
when processing starts, and forgets the count as soon as an attempt ends normally — completed, failed,
retried or skipped — so only deliveries that never finished add up. Past ``max_deliveries`` the message is
failed without running: it goes to the dead letters with the error type ``PoisonMessage``.

Place it after ``PayloadValidation`` (an invalid payload never runs, so it needs no count) and before
``Idempotency`` (a poison message must not take an idempotency key) and ``Retries``.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation import options as opt
from cep_automation.db.redis_client import get_redis, key

logger = logging.getLogger("cep_automation.middleware.DeliveryLimit")

DEFAULT_MAX_DELIVERIES = 5
COUNT_TTL_S = 3 * 24 * 3600  # longer than any redelivery gap; a forgotten count cannot linger for ever
ERROR_TYPE = "PoisonMessage"


def deliveries_key(message_id: str) -> str:
    return key("deliveries", message_id)


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

    @property
    def actor_options(self) -> set[str]:
        return {"max_deliveries"}

    def limit_for(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> int:
        actor = broker.actors.get(message.actor_name)
        limit = actor.options.get("max_deliveries") if actor is not None else None
        return int(limit) if limit else self.max_deliveries

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        deliveries = self._count(message.message_id)
        limit = self.limit_for(broker, message)
        if deliveries is None or deliveries <= limit:
            return
        text = (f"delivered {deliveries} times and no attempt ever finished (its worker process died each time); "
                f"not run again after {limit} deliveries")
        logger.error("Message %s (%s) is poison: %s", message.message_id, message.actor_name, text)
        message.options[opt.ERROR] = {"type": ERROR_TYPE, "message": text, "deliveries": deliveries}
        message.fail()
        raise SkipMessage(text)

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # A retry being enqueued: the attempt that failed did finish. Forget its delivery now, before the retry
        # can be fetched by another thread, since this middleware's after-hooks run after Retries' enqueue.
        if message.options.get("retries"):
            self._forget(message.message_id)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None or message.failed:  # else Retries re-enqueued it, and before_enqueue forgot it
            self._forget(message.message_id)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._forget(message.message_id)

    def _count(self, message_id: str) -> int | None:
        """This delivery's number, or None when Redis cannot count (the message then runs: fail open)."""
        try:
            pipe = get_redis().pipeline()
            pipe.incr(deliveries_key(message_id))
            pipe.expire(deliveries_key(message_id), COUNT_TTL_S)
            return int(pipe.execute()[0])
        except redis.RedisError as exc:
            logger.warning("Deliveries of %s not counted (Redis unavailable: %s)", message_id, type(exc).__name__)
            return None

    def _forget(self, message_id: str) -> None:
        try:
            get_redis().delete(deliveries_key(message_id))
        except redis.RedisError as exc:  # the count expires on its own
            logger.warning("Delivery count of %s not cleared (Redis unavailable: %s)", message_id,
                           type(exc).__name__)
