"""Error reports (extra ``sentry``): every dead letter reported once, with the job's context, scrubbed.

Added by :func:`cep_automation.telemetry.install` only when ``SENTRY_DSN`` is set. Every message that will not
be retried reaches ``before_nack`` (retries exhausted, permanent errors, poison messages, invalid payloads),
once, in the process that gave up on it.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq import Middleware

from cep_automation.middleware.dead_letters import letter_from
from cep_automation.telemetry import sentry

logger = logging.getLogger("cep_automation.middleware.ErrorReports")


class ErrorReports(Middleware):
    """Reports dead-lettered (and crashed) jobs to Sentry."""

    def before_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        letter = letter_from(message)
        job = {"actor": letter.actor, "queue": letter.queue, "message_id": letter.message_id,
               "attempts": letter.attempts, "error_type": letter.error_type, "error_message": letter.error_message,
               "enqueued_at": letter.enqueued_at.isoformat() if letter.enqueued_at else None, "payload": letter.payload}
        try:
            sentry.report_dead_letter(job, getattr(message, "_exception", None))
        except Exception as exc:  # a report must never turn into a second failure
            logger.warning("Dead letter %s not reported to Sentry: %s", letter.message_id, type(exc).__name__)
