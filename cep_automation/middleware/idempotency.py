"""Skips a delivery whose idempotency key already ran or is running elsewhere.

One Redis round trip before a message (the claim, which also reads what the job's effects ledger holds when the
ledger's key is the idempotency key, as ``lead.created``'s is); the outcome rides with the message's ack
(:mod:`cep_automation.broker.acks`) where the broker batches its acks on the same Redis.

The key comes from the message option ``idempotency_key``; :class:`~cep_automation.runtime.actor.CepActor`
sets it from the actor option of the same name (a template such as ``"lead.created:{lead_id}"``)
or from the scheduled tick, so every enqueue path carries it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation import options as opt
from cep_automation.broker import acks
from cep_automation.middleware.delivery_limit import run_ttl_s
from cep_automation.records import delivery, effects, idempotency

logger = logging.getLogger("cep_automation.middleware.Idempotency")


class Idempotency(Middleware):
    """Runs each idempotency key once: pending → completed, or failed (released for the retry)."""

    def __init__(self) -> None:
        self._held: dict[str, bool] = {}  # message id → whether DeliveryLimit shares its round trips
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {opt.IDEMPOTENCY_KEY}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        idem_key = message.options.get(opt.IDEMPOTENCY_KEY)
        if not idem_key:
            return
        admission = delivery.take_admission(message.message_id)  # DeliveryLimit took the key in its round trip
        if admission is not None:
            blocking, shared = admission.blocking, True
        else:  # the job's effects ledger (same key) needs what Redis holds for it: read in this round trip
            blocking, (held, intents) = idempotency.acquire_run_reading(
                idem_key, message.message_id, run_ttl_s(broker, message), effects.prefetch_keys(idem_key))
            shared = False
            effects.prefetched(idem_key, held, intents)
        if blocking is not None:
            logger.info("Skipping %s: key %r is %s by message %s", message.message_id, idem_key,
                        blocking["status"], blocking["message_id"])
            message.options[opt.IDEMPOTENT_SKIP] = blocking
            raise SkipMessage(f"duplicate of {blocking['message_id']}")
        with self._lock:
            self._held[message.message_id] = shared

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        self._release(broker, message, succeeded=exception is None)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        # Skipped after we took the key (a later middleware skipped it): let another delivery run.
        self._release(broker, message, succeeded=False)

    def _release(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, succeeded: bool) -> None:
        effects.forget_prefetched()
        with self._lock:
            shared = self._held.pop(message.message_id, None)
        if shared is None:
            return
        idem_key = message.options[opt.IDEMPOTENCY_KEY]
        if shared:  # DeliveryLimit writes it with the delivery count's removal, in one round trip
            delivery.leave_outcome(message.message_id, idem_key, succeeded)
        elif not acks.after_ack(broker, message, idempotency.finish_run_op(idem_key, message.message_id, succeeded)):
            idempotency.finish_run(idem_key, message.message_id, succeeded=succeeded)  # no ack batch to ride with
