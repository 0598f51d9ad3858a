"""Send one alert to every alert sink, once per collapse window across all processes.

A failing job raises the same alert on every retry and in every worker; a Redis ``SET NX EX`` on a
hash of (severity, title, body) lets the first one through and collapses the rest for
``CEP_ALERT_COLLAPSE_S`` seconds. The log sink always receives what is sent, and a sink that fails
is logged, never raised: an alert must not turn into a second failure.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from cep_automation.db.redis_client import get_redis, key
from cep_automation.plugins.default_alerts import LogAlerts
from cep_automation.plugins.integration import Integration
from cep_automation.plugins.kinds import Alerts, check_severity
from cep_automation.plugins.registry import Registry
from cep_automation.redact import redact
from cep_automation.settings import Settings, get_settings

logger = logging.getLogger("cep_automation.runtime.alerts")


@dataclass
class AlertOutcome:
    """What became of one alert: the sinks it reached, those that failed (name → error), or collapsed."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    collapsed: bool = False


def send_alert(sinks: Registry | Iterable[Integration], severity: str, title: str, body: str = "", *,
               settings: Settings | None = None, **context: Any) -> AlertOutcome:
    """Send an alert to every enabled alerts integration (and the log) unless an identical one was just sent.

    Parameters:
      sinks: a :class:`Registry` or integrations; only enabled ones of kind ``alerts`` are used.
      severity: low, medium, high or critical.
      settings: for ``cep_alert_collapse_s`` (0 never collapses); the process's settings by default.
      context: extra fields (job, message id, ...), shown by sinks that can.
    Raises:
      ValueError: an unknown severity (a bug in the caller, not a sink failure).
    """
    check_severity(severity)
    window_s = (settings or get_settings()).cep_alert_collapse_s
    if _collapsed(window_s, severity, title, body):
        logger.info("alert collapsed (an identical one was sent in the last %d s): [%s] %s",
                    window_s, severity.upper(), redact(title))
        return AlertOutcome(collapsed=True)
    safe_context = {name: redact(value) if isinstance(value, str) else value for name, value in context.items()}
    return _deliver(alert_sinks(sinks), severity, redact(title), redact(body), safe_context)


def alert_sinks(sinks: Registry | Iterable[Integration]) -> list[Alerts]:
    """The enabled alerts integrations, with the log sink first when none was given."""
    given = sinks.of_kind("alerts") if isinstance(sinks, Registry) else sinks
    found = [i for i in given if isinstance(i, Alerts) and i.enabled]
    if not any(isinstance(i, LogAlerts) for i in found):
        found.insert(0, LogAlerts(settings=None))
    return found


def _collapsed(window_s: int, severity: str, title: str, body: str) -> bool:
    """True when an identical alert was sent within the window (by any process)."""
    if window_s <= 0:
        return False
    digest = hashlib.sha256("\x00".join((severity, title, body)).encode()).hexdigest()[:32]
    try:
        first = get_redis().set(key("alert", digest), "1", nx=True, ex=window_s)
    except redis.RedisError as exc:  # better a duplicate alert than a lost one
        logger.warning("cannot check alert collapse in Redis (%s); sending anyway", type(exc).__name__)
        return False
    return not first


def _deliver(sinks: list[Alerts], severity: str, title: str, body: str, context: dict[str, Any]) -> AlertOutcome:
    outcome = AlertOutcome()
    for sink in sinks:
        try:
            sink.send(severity, title, body, **context)
        except Exception as exc:
            outcome.failed[sink.name] = redact(str(exc))
            logger.error("alert sink %s failed (%s): %s", sink.name, type(exc).__name__, redact(str(exc)))
        else:
            outcome.sent.append(sink.name)
    return outcome
