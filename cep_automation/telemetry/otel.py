"""OpenTelemetry set-up and spans (extra ``otel``), imported only when tracing is enabled.

The exporter is OTLP over HTTP, configured by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_SCHEDULE_DELAY`` …) as the SDK reads them;
``OTEL_TRACES_EXPORTER=console`` prints spans instead. The trace context crosses processes in the message
option ``cep_trace`` (W3C ``traceparent``), written at enqueue and read when a worker processes the message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cep_automation.errors import CepError

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the message names the extra
    raise CepError("OTEL_* variables ask for traces but OpenTelemetry is not installed: "
                   "pip install 'cep-automation[otel]'") from None

__all__ = ["SpanKind", "context", "ended", "extract", "inject", "setup", "span", "trace", "tracer"]
DEFAULT_SERVICE = "cep-automation"


def setup() -> None:
    """Install a tracer provider exporting in batches (unless the process already has an SDK provider)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter()))
    trace.set_tracer_provider(provider)


def _exporter() -> SpanExporter:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer() -> trace.Tracer:
    return trace.get_tracer("cep_automation")


@contextmanager
def span(name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A child of the current span, current in the block; an exception marks it as an error and goes on."""
    # An error's message may quote a provider's answer: spans keep its type only (no personal data leaves).
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False,
                                        set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            _mark(current, exc)
            raise


def inject(parent: Span) -> dict[str, str]:
    """``parent``'s context as W3C headers (what a message carries to the worker)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(parent))
    return carrier


def extract(carrier: dict[str, str] | None) -> context.Context:
    return propagate.extract(carrier or {})


def ended(current: Span, exception: BaseException | None) -> None:
    """End ``current``, marking an error when the work raised."""
    if exception is not None:
        _mark(current, exception)
    current.end()


def _mark(current: Span, exception: BaseException) -> None:
    current.set_attribute("exception.type", type(exception).__name__)
    current.set_status(Status(StatusCode.ERROR, type(exception).__name__))
