"""Built-in alert sink that writes alerts to the log; always enabled, so no alert is ever dropped."""

from __future__ import annotations

import logging
from typing import Any

from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.kinds import Alerts, check_severity

_LEVELS = {"low": logging.INFO, "medium": logging.WARNING, "high": logging.ERROR, "critical": logging.CRITICAL}


class LogAlerts(Alerts):
    """Writes each alert to the ``cep_automation.alerts`` logger at a level matching its severity."""

    name = "log"

    def send(self, severity: str, title: str, body: str = "", **context: Any) -> None:
        check_severity(severity)
        logging.getLogger("cep_automation.alerts").log(
            _LEVELS[severity], "[%s] %s %s", severity.upper(), title, body, extra={"alert": context}
        )


@hookimpl(trylast=True)
def register_integrations(register: Register) -> None:
    register(LogAlerts(settings=None))
