"""Optional tracing (OpenTelemetry, extra ``otel``) and error reports (Sentry, extra ``sentry``).

Neither SDK is imported, and no span is made, unless it is enabled: tracing when the standard variables ask
for an exporter (``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins), Sentry when ``SENTRY_DSN`` is set.
The per-message path then reads one module flag (:data:`ACTIVE`) and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import dramatiq

from cep_automation.settings import Settings

ACTIVE = False  # tracing is on in this process: steps and HTTP calls make spans
NO_SPAN: AbstractContextManager[Any] = nullcontext()  # what a caller enters when tracing is off (reusable)


def tracing_enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard ``OTEL_*`` variables ask for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def install(broker: dramatiq.Broker, settings: Settings) -> None:
    """Turn on what is enabled for this process (once, at bootstrap, before any actor is declared)."""
    global ACTIVE
    if tracing_enabled() and not ACTIVE:
        from cep_automation.middleware.tracing import Tracing
        from cep_automation.telemetry import otel

        otel.setup()
        broker.add_middleware(Tracing(), before=type(broker.middleware[0]))  # outermost: its span holds the rest
        ACTIVE = True
    if settings.sentry_dsn is not None:
        from cep_automation.middleware.error_reports import ErrorReports
        from cep_automation.telemetry import sentry

        if sentry.setup(settings):
            broker.add_middleware(ErrorReports())


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span named ``name``, child of the current one, current while the block runs (only when :data:`ACTIVE`)."""
    from cep_automation.telemetry import otel

    return otel.span(name, attributes)
