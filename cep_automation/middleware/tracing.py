"""Tracing (extra ``otel``): a span per enqueue and per processing, one trace across processes.

Added by :func:`cep_automation.telemetry.install` only when tracing is enabled, as the outermost middleware, so
its processing span encloses every other middleware's work, the steps and the HTTP calls. At enqueue, the
message gets the option ``cep_trace`` (the enqueue span's W3C context); the worker that processes it starts its
span from there. A retry keeps the context it was first sent with: every attempt is in the one trace.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.telemetry import otel


class Tracing(Middleware):
    """OpenTelemetry spans for enqueue (producer) and processing (consumer) of every message."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if opt.TRACE in message.options:  # a retry, or a message sent again: it stays in its trace
            return
        attributes = {"messaging.system": "dramatiq", "messaging.destination.name": message.queue_name,
                      "messaging.message.id": message.message_id, "cep.job": message.actor_name}
        enqueue = otel.tracer().start_span(f"enqueue {message.actor_name}", kind=otel.SpanKind.PRODUCER,
                                           attributes=attributes)
        message.options[opt.TRACE] = otel.inject(enqueue)
        enqueue.end()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        attributes: dict[str, str | int] = {
            "messaging.system": "dramatiq", "messaging.destination.name": message.queue_name,
            "messaging.message.id": message.message_id, "cep.job": message.actor_name,
            "cep.attempt": int(message.options.get(opt.RETRIES, 0)) + 1}
        processing = otel.tracer().start_span(f"process {message.actor_name}", kind=otel.SpanKind.CONSUMER,
                                              context=otel.extract(message.options.get(opt.TRACE)),
                                              attributes=attributes)
        token = otel.context.attach(otel.trace.set_span_in_context(processing))
        self._local.current = (processing, token)

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        self._end(exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._end(None)

    def _end(self, exception: BaseException | None) -> None:
        current = getattr(self._local, "current", None)
        if current is None:
            return
        self._local.current = None
        processing, token = current
        otel.context.detach(token)
        otel.ended(processing, exception)
