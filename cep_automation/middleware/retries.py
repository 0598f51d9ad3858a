"""Dramatiq's retries, plus: a :class:`PermanentError` is never retried, and a retry is never lost.

A :class:`~cep_automation.errors.TransientError` is a Dramatiq ``Retry``, so its ``retry_after``
(from a ``Retry-After`` header) is used as the delay by the parent class. The parent re-enqueues
from an after-hook, whose exceptions the broker swallows: with Redis down the retry would vanish
and the message be acknowledged. So the enqueue waits out a short outage, and if Redis stays down
the message is failed instead — it then goes to the dead letters with the reason.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import dramatiq
import redis
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Retries as DramatiqRetries

from cep_automation import options as opt
from cep_automation.errors import PermanentError

ENQUEUE_PATIENCE_S = 60.0
OUTAGE_ERRORS = (BrokerConnectionError, redis.ConnectionError, redis.TimeoutError)


class _PatientBroker:
    """The broker as Retries sees it: ``enqueue`` waits out a broker outage instead of failing at once."""

    def __init__(self, broker: dramatiq.Broker, patience_s: float) -> None:
        self._broker, self._patience_s = broker, patience_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        deadline, pause = time.monotonic() + self._patience_s, 0.5
        while True:
            try:
                return self._broker.enqueue(message, delay=delay)
            except OUTAGE_ERRORS:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


class Retries(DramatiqRetries):
    """Exponential backoff from the queue policy table; permanent errors fail at once."""

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if isinstance(exception, PermanentError):
            message.options["retries"] = message.options.get("retries", 0) + 1
            message.options["traceback"] = traceback.format_exc(limit=30)
            self.logger.info("Permanent error in message %r, not retrying: %s", message.message_id, exception)
            message.fail()
            return
        try:
            super().after_process_message(  # type: ignore[no-untyped-call]  # dramatiq's Retries hook is unannotated
                _PatientBroker(broker, ENQUEUE_PATIENCE_S), message, result=result, exception=exception)
        except Exception as exc:
            self.logger.error("Retry of message %r could not be enqueued (%s): dead-lettering it",
                              message.message_id, type(exc).__name__)
            message.options[opt.ERROR] = {
                "type": "RetryNotEnqueued",
                "message": f"{type(exception).__name__}: {exception} — and its retry could not be enqueued: "
                           f"{type(exc).__name__}: {exc}"}
            message.fail()
