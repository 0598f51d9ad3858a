"""Writes every message that will not be retried to the ``dead_letters`` table, before it is rejected.

Covers retries exhausted, permanent errors, invalid payloads, the age limit and unknown actors:
all of them reach ``before_nack``. When PostgreSQL is down the dead letter is pushed to a Redis
spool instead and written by a background thread once PostgreSQL is back, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import traceback as tb

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import CepError
from cep_automation.records import dead_letters, job_state

logger = logging.getLogger("cep_automation.middleware.DeadLetters")
FLUSH_EVERY_S = 5.0


def letter_from(message: dramatiq.MessageProxy) -> dead_letters.DeadLetter:
    """What we know of a failed message: payload, options, error and traceback."""
    options = dict(message.options)
    error = options.get(opt.ERROR)
    exception = getattr(message, "_exception", None)
    if error:
        error_type, error_message = error["type"], error["message"]
    elif exception is not None:
        error_type, error_message = type(exception).__name__, str(exception)
    else:
        error_type, error_message = "Unknown", "rejected without an exception"
    trace = options.get("traceback") or (
        "".join(tb.format_exception(exception)) if exception is not None else "")
    return dead_letters.DeadLetter(
        queue=message.queue_name, actor=message.actor_name, message_id=message.message_id,
        payload={"args": list(message.args), "kwargs": message.kwargs},
        options={k: v for k, v in options.items() if k != "traceback"},
        error_type=error_type, error_message=error_message, traceback=trace,
        # A poison message never finished an attempt: its deliveries are what it used up.
        attempts=(error or {}).get("deliveries") or options.get("retries", 0) or 1,
        enqueued_at=dt.datetime.fromtimestamp(message.message_timestamp / 1000, dt.UTC),
    )


class DeadLetters(Middleware):
    """Records dead letters in PostgreSQL (or the Redis spool while PostgreSQL is down)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def before_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        letter = letter_from(message)
        try:
            with connection(timeout=5) as conn:
                dead_letters.record(conn, letter)
        except (CepError, OSError, Exception) as exc:  # noqa: B014 - any database failure spools
            self._spool(letter, exc)
        job_state.record(message.message_id, "dead", error=f"{letter.error_type}: {letter.error_message}")

    def _spool(self, letter: dead_letters.DeadLetter, cause: BaseException) -> None:
        logger.warning("PostgreSQL unavailable (%s); dead letter %s kept in the Redis spool", cause,
                       letter.message_id)
        try:
            dead_letters.SPOOL.push(letter.asjson())
        except Exception:
            # Last resort: the broker's own dead-letter queue still holds the message.
            logger.error("Could not spool dead letter %s: %s", letter.message_id, json.dumps(letter.asjson(),
                                                                                             default=str))

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        threading.Thread(target=self._flush_loop, name="cep-dlq-spool", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        self._flush_quietly()

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY_S):
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            written = dead_letters.flush_spool()
            if written:
                logger.info("Wrote %d spooled dead letter(s) to PostgreSQL", written)
        except Exception as exc:
            logger.debug("Dead-letter spool not flushed yet: %s", exc)
