"""Start-up of a process that declares actors: settings, broker, plugins — in that order."""

from __future__ import annotations

import logging

import dramatiq

from cep_automation import log_output, log_redaction, telemetry
from cep_automation.broker import build_broker
from cep_automation.plugins.manager import load_plugins
from cep_automation.settings import get_settings


class _ResultsWarningFilter(logging.Filter):
    """Our actors return results on purpose (JobState keeps them); Dramatiq warns without its Results."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "haven't added the Results middleware" not in record.getMessage()


def bootstrap() -> dramatiq.Broker:
    """Validate settings, set the global broker and load plugins before any actor is declared."""
    log_redaction.install()  # before anything logs: every record of the process is masked
    settings = get_settings()
    log_output.configure(as_json=settings.cep_log_json)
    logging.getLogger("cep_automation").setLevel(settings.cep_log_level.upper())
    logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_ResultsWarningFilter())
    broker = build_broker(settings)
    telemetry.install(broker, settings)  # tracing and error reports, when enabled (nothing is imported otherwise)
    dramatiq.set_broker(broker)
    load_plugins(settings)
    return broker
