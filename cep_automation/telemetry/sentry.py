"""Sentry error reports (extra ``sentry``), imported only when ``SENTRY_DSN`` is set.

Only what we send is reported: dead-lettered jobs (and crashed ones: a poison message, or an error that is
none of ours, i.e. a bug), one event each, with the job's context. The SDK's default integrations are off
(no logging events, breadcrumbs or frame locals), and :func:`scrub`, the ``before_send``, passes every string
of the event through :func:`cep_automation.redact.redact`: no email or phone number leaves (docs/gdpr.md).
"""

from __future__ import annotations

import logging
from typing import Any

from cep_automation.errors import CepError
from cep_automation.redact import redact
from cep_automation.settings import Settings

logger = logging.getLogger("cep_automation.telemetry.sentry")
CRASHES = ("PoisonMessage",)  # dead letters whose deliveries killed their worker


def setup(settings: Settings) -> bool:
    """Initialise the SDK; False (and a warning) when the extra is not installed."""
    try:
        import sentry_sdk
    except ImportError:
        logger.warning("SENTRY_DSN is set but sentry-sdk is not installed: pip install 'cep-automation[sentry]'")
        return False
    assert settings.sentry_dsn is not None
    sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), environment=settings.sentry_environment,
                    default_integrations=False, auto_enabling_integrations=False, send_default_pii=False,
                    include_local_variables=False, max_breadcrumbs=0, before_send=scrub)
    return True


def scrub(event: Any, hint: Any = None) -> Any:
    """The event with every email, phone number and secret masked, keys and values, at any depth."""
    if isinstance(event, str):
        return redact(event)
    if isinstance(event, dict):
        return {scrub(name): scrub(value) for name, value in event.items()}
    if isinstance(event, list | tuple):
        return [scrub(value) for value in event]
    return event


def report_dead_letter(job: dict[str, Any], exception: BaseException | None) -> None:
    """One event for a dead letter: its exception when there is one, else its recorded error."""
    import sentry_sdk

    crashed = job["error_type"] in CRASHES or (exception is not None and not isinstance(exception, CepError))
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job", job["actor"])
        scope.set_tag("queue", job["queue"])
        scope.set_tag("crashed", "yes" if crashed else "no")
        scope.set_context("job", job)
        scope.fingerprint = ["dead-letter", job["actor"], job["error_type"]]
        if exception is not None:
            sentry_sdk.capture_exception(exception)
        else:
            sentry_sdk.capture_message(f"dead letter {job['actor']}: {job['error_type']}: {job['error_message']}",
                                       level="error")
