"""Skips a delivery whose idempotency key already ran or is running elsewhere.

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
from cep_automation.records import idempotency

logger = logging.getLogger("cep_automation.middleware.Idempotency")

opt.IDEMPOTENCY_KEY = "idempotency_key"


class Idempotency(Middleware):
    """Runs each idempotency key once: pending → completed, or failed (released for the retry)."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {opt.IDEMPOTENCY_KEY}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        idem_key = message.options.get(opt.IDEMPOTENCY_KEY)
        if not idem_key:
            return
        time_limit_ms = broker.get_actor(message.actor_name).options.get("time_limit", 600_000)
        blocking = idempotency.acquire_run(idem_key, message.message_id, time_limit_ms // 1000 + 5)
        if blocking is not None:
            logger.info("Skipping %s: key %r is %s by message %s", message.message_id, idem_key,
                        blocking["status"], blocking["message_id"])
            message.options[opt.IDEMPOTENT_SKIP] = blocking
            raise SkipMessage(f"duplicate of {blocking['message_id']}")
        with self._lock:
            self._held.add(message.message_id)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if self._release(message):
            idem_key = message.options[opt.IDEMPOTENCY_KEY]
            idempotency.finish_run(idem_key, message.message_id, succeeded=exception is None)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        # Skipped after we took the key (a later middleware skipped it): let another delivery run.
        if self._release(message):
            idempotency.finish_run(message.options[opt.IDEMPOTENCY_KEY], message.message_id, succeeded=False)

    def _release(self, message: dramatiq.MessageProxy) -> bool:
        with self._lock:
            if message.message_id in self._held:
                self._held.discard(message.message_id)
                return True
        return False
