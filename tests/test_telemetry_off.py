"""Tracing and error reports are off unless configured: no SDK imported, no middleware, no span work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cep_automation import telemetry

PROBE = """
import json, sys
from cep_automation.actors import broker
from cep_automation import telemetry
# redis-py imports opentelemetry by itself when it is installed: ours is what counts (our modules, a tracer provider)
OURS = ("cep_automation.telemetry.otel", "cep_automation.middleware.tracing", "cep_automation.telemetry.sentry",
        "sentry_sdk")
provider = type(sys.modules["opentelemetry.trace"].get_tracer_provider()).__name__ if "opentelemetry.trace" in (
    sys.modules) else None
print(json.dumps({"active": telemetry.ACTIVE, "middleware": [type(m).__name__ for m in broker.middleware],
                  "ours": [m for m in OURS if m in sys.modules], "provider": provider}))
"""


@pytest.mark.parametrize("env, enabled", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
])
def test_tracing_is_enabled_by_the_standard_variables(env, enabled):
    assert telemetry.tracing_enabled(env) is enabled


def probe(process_env, **extra):
    env = {k: v for k, v in process_env(**extra).items() if not k.startswith(("OTEL_", "SENTRY_"))}
    env.update(extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_nothing_is_imported_or_added_when_not_configured(process_env):
    seen = probe(process_env)
    assert seen["active"] is False and seen["ours"] == [] and seen["provider"] in (None, "ProxyTracerProvider")
    assert "Tracing" not in seen["middleware"] and "ErrorReports" not in seen["middleware"]


def test_configured_processes_add_the_outermost_span_and_the_reports(process_env):
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("sentry_sdk")
    seen = probe(process_env, OTEL_TRACES_EXPORTER="console", SENTRY_DSN="http://key@127.0.0.1:9/1")
    assert seen["active"] is True and seen["middleware"][0] == "Tracing" and "ErrorReports" in seen["middleware"]
    assert seen["ours"] == list(("cep_automation.telemetry.otel", "cep_automation.middleware.tracing",
                                 "cep_automation.telemetry.sentry", "sentry_sdk"))
    assert seen["provider"] == "TracerProvider"


def test_sentry_scrub_masks_every_string_at_any_depth():
    from cep_automation.telemetry.sentry import scrub

    event = {"message": "failed for ana@example.com", "extra": {"ana@example.com": ["+34 600 123 456", 3]},
             "exception": {"values": [{"value": "token=abc123 phone 612345678"}]}}
    text = json.dumps(scrub(event))
    assert "ana@example.com" not in text and "600 123 456" not in text and "612345678" not in text
    assert "abc123" not in text and "a***@example.com" in text and ", 3]" in text
