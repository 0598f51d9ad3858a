"""Dramatiq's retries, plus: a :class:`PermanentError` is never retried.

A :class:`~cep_automation.errors.TransientError` is a Dramatiq ``Retry``, so its
``retry_after`` (from a ``Retry-After`` header) is used as the delay by the parent class.
"""

from __future__ import annotations

import traceback
from typing import Any

import dramatiq
from dramatiq.middleware import Retries as DramatiqRetries

from cep_automation.errors import PermanentError


class Retries(DramatiqRetries):
    """Exponential backoff from the queue policy table; permanent errors fail at once."""

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.Message, *, result: Any = None, exception: Any = None
    ) -> None:
        if isinstance(exception, PermanentError):
            message.options["retries"] = message.options.get("retries", 0) + 1
            message.options["traceback"] = traceback.format_exc(limit=30)
            self.logger.info("Permanent error in message %r, not retrying: %s", message.message_id, exception)
            message.fail()
            return
        super().after_process_message(broker, message, result=result, exception=exception)
