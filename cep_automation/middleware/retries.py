"""Retries on the job's own delay curve; a permanent error is never retried; a retry is never lost.

Replaces Dramatiq's ``Retries`` (same actor options: ``max_retries``, ``throws``, ``retry_when``,
``on_retry_exhausted``), for three reasons:

* the delay follows the policy table's curve (the ``backoff`` actor option, :mod:`cep_automation.backoff`),
  not Dramatiq's random draw; a :class:`~cep_automation.errors.TransientError`'s ``retry_after`` (from a
  ``Retry-After`` header) replaces it for that retry, and one longer than ``CEP_MAX_RETRY_AFTER_S`` sends the
  message to the dead letters saying so, rather than parking it for days;
* a :class:`~cep_automation.errors.PermanentError` fails at once;
* the retry is enqueued from an after-hook, whose exceptions the broker swallows: with Redis down it would
  vanish while the message is acknowledged. The enqueue waits out an outage of up to
  ``CEP_RETRY_ENQUEUE_PATIENCE_S`` (60 s), and if Redis stays down the message is failed instead — it then
  goes to the dead letters as ``RetryNotEnqueued``, with the reason.

The delay chosen is kept in the message option ``cep_retry_delay_ms`` (audit log, job page, tests).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import dramatiq
import redis
from dramatiq import Middleware
from dramatiq.errors import BrokerConnectionError, Retry

from cep_automation import options as opt
from cep_automation.backoff import Backoff, exponential
from cep_automation.errors import PermanentError, Postponed
from cep_automation.settings import get_settings

OUTAGE_ERRORS = (BrokerConnectionError, redis.ConnectionError, redis.TimeoutError)


def enqueue_patiently(broker: dramatiq.Broker, message: dramatiq.Message[Any] | dramatiq.MessageProxy, delay: int,
                      patience_s: float) -> None:
    """``broker.enqueue`` that waits out a broker outage of up to ``patience_s`` before it gives up.

    A retry enqueues the :class:`~dramatiq.MessageProxy` itself, as Dramatiq's own ``Retries`` does.
    """
    deadline, pause = time.monotonic() + patience_s, 0.5
    while True:
        try:
            broker.enqueue(message, delay=delay)  # type: ignore[arg-type]  # a proxy stands for its message
            return
        except OUTAGE_ERRORS:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class Retries(Middleware):
    """Retries failed messages on their curve (see the module docstring).

    Parameters:
      max_retries: retries of an actor that sets none.
      backoff: the curve of an actor that sets none (Dramatiq-style ``min_backoff``/``max_backoff`` actor
        options give an exponential curve between them).
    """

    def __init__(self, *, max_retries: int = 20, backoff: Backoff | None = None) -> None:
        self.logger = logging.getLogger("cep_automation.middleware.Retries")
        self.max_retries = max_retries
        self.backoff = backoff or exponential(15_000, 7 * 24 * 3600 * 1000)

    @property
    def actor_options(self) -> set[str]:
        return {"max_retries", "min_backoff", "max_backoff", "backoff", "retry_when", "throws", "on_retry_exhausted"}

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if exception is None:
            return
        actor = broker.get_actor(message.actor_name)
        retries = message.options.get(opt.RETRIES, 0)
        postponed = isinstance(exception, Postponed)  # waiting is not failing: no attempt is used up
        if not postponed:
            message.options[opt.RETRIES] = retries + 1
        message.options[opt.TRACEBACK] = traceback.format_exc(limit=30)
        message.options["requeue_timestamp"] = int(time.time() * 1000)
        if not postponed and self._gives_up(actor, message, exception, retries):
            message.fail()
            self._exhausted(broker, actor, message, retries)
            return
        delay = self.delay_ms(actor, message, exception, max(retries, 1) if postponed else retries + 1)
        if delay is None:
            message.fail()
            return
        message.options[opt.RETRY_DELAY_MS] = delay
        self.logger.info("Retrying message %r in %d ms.", message.message_id, delay)
        try:
            enqueue_patiently(broker, message, delay, get_settings().cep_retry_enqueue_patience_s)
        except Exception as exc:
            self.logger.error("Retry of message %r could not be enqueued (%s): dead-lettering it",
                              message.message_id, type(exc).__name__)
            message.options[opt.ERROR] = {
                "type": "RetryNotEnqueued",
                "message": f"{type(exception).__name__}: {exception} — and its retry could not be enqueued: "
                           f"{type(exc).__name__}: {exc}"}
            message.fail()

    def _gives_up(self, actor: Any, message: dramatiq.MessageProxy, exception: BaseException, retries: int) -> bool:
        if isinstance(exception, PermanentError):
            self.logger.info("Permanent error in message %r, not retrying: %s", message.message_id, exception)
            return True
        throws = message.options.get("throws") or actor.options.get("throws")
        if throws and isinstance(exception, throws):
            self.logger.info("Aborting message %r.", message.message_id)
            return True
        retry_when = actor.options.get("retry_when")
        if retry_when is not None:
            return not retry_when(retries, exception)
        max_retries = message.options.get("max_retries", actor.options.get("max_retries", self.max_retries))
        if max_retries is not None and retries >= max_retries:
            self.logger.warning("Retries exceeded for message %r.", message.message_id)
            return True
        return False

    def delay_ms(self, actor: Any, message: dramatiq.MessageProxy, exception: BaseException,
                 retry: int) -> int | None:
        """The delay of the ``retry``-th retry; None (and the reason in the message) when it is too long."""
        if isinstance(exception, Retry) and exception.delay is not None:
            cap_s = get_settings().cep_max_retry_after_s
            if exception.delay > cap_s * 1000 and not isinstance(exception, Postponed):  # our own waits: no cap
                message.options[opt.ERROR] = {
                    "type": "RetryAfterTooLong",
                    "message": f"{type(exception).__name__}: {exception} — the provider asked to retry in "
                               f"{exception.delay / 1000:.0f} s, over CEP_MAX_RETRY_AFTER_S ({cap_s} s)"}
                self.logger.warning("Message %r: Retry-After of %d s is over the %d s cap; dead-lettering it",
                                    message.message_id, exception.delay // 1000, cap_s)
                return None
            return int(exception.delay)
        return self.curve(actor).delay_ms(retry)

    def curve(self, actor: Any) -> Backoff:
        """The actor's ``backoff``, else an exponential curve from its Dramatiq-style options, else the default."""
        if isinstance(actor.options.get("backoff"), Backoff):
            return actor.options["backoff"]  # type: ignore[no-any-return]  # checked just above
        if "min_backoff" in actor.options:
            base = int(actor.options["min_backoff"])
            return exponential(base, max(base, int(actor.options.get("max_backoff", base))))
        return self.backoff

    def _exhausted(self, broker: dramatiq.Broker, actor: Any, message: dramatiq.MessageProxy, retries: int) -> None:
        target = message.options.get("on_retry_exhausted") or actor.options.get("on_retry_exhausted")
        if target:
            broker.get_actor(target).send(message.asdict(), {"retries": retries})
