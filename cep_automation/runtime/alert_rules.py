"""The built-in alert rules: measure every threshold, send an alert when one fires, and a "resolved" when it clears.

Thresholds are :data:`cep_automation.ops.thresholds.THRESHOLDS` (the same table the Prometheus rules file is
generated from) with ``CEP_ALERT_THRESHOLDS`` applied. A rule fires when its condition has held for the
threshold's ``for_s`` (pending meanwhile, across checks: the state is in Redis, :mod:`~cep_automation.records.
alert_state`), is sent once through the alert sinks (:func:`~cep_automation.runtime.alerts.send_alert`, which
also collapses duplicates across processes), and once more, as resolved, when the condition no longer holds.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from cep_automation.ops.thresholds import THRESHOLDS, Threshold, overridden
from cep_automation.records import alert_state
from cep_automation.runtime.alert_measures import Measures, Reading
from cep_automation.runtime.alerts import send_alert
from cep_automation.settings import get_settings

logger = logging.getLogger("cep_automation.runtime.alert_rules")
SEVERITY = {"warning": "medium", "critical": "critical"}  # threshold severity → alert sink severity
RESOLVED_SEVERITY = "low"


@dataclass
class CheckOutcome:
    """What one check did: the rules that fired, resolved, and are pending (held, not yet for long enough)."""

    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # a threshold that could not be measured → why

    def asdict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def thresholds() -> tuple[Threshold, ...]:
    """The thresholds in force: the table with the settings' overrides."""
    return overridden(get_settings().cep_alert_thresholds, THRESHOLDS)


def check(sinks: Any = None, now: float | None = None) -> CheckOutcome:
    """Measure every threshold once and move each rule's state on; send what fired and what resolved.

    Parameters:
      sinks: a :class:`~cep_automation.plugins.registry.Registry` or integrations (the process's by default).
      now: the time of the check (Unix seconds; now by default).
    """
    if sinks is None:
        from cep_automation.runtime import integrations

        sinks = integrations.registry()
    measures, outcome = Measures(now), CheckOutcome()
    states, seen = alert_state.rule_states(), set[str]()
    for threshold in thresholds():
        try:
            readings = measures.read(threshold)
        except Exception as exc:  # one unreadable measure (PostgreSQL down) must not stop the others
            outcome.failed[threshold.alert] = f"{type(exc).__name__}: {exc}"
            seen.update(r for r in states if r.split(":")[0] == threshold.alert)  # keep their state as it is
            continue
        for reading in readings:
            seen.add(reading.rule)
            step(reading, states.get(reading.rule), measures.now, sinks, outcome)
    for rule in sorted(set(states) - seen):  # a queue with no reading any more (no attempts in the window)
        _resolve(rule, states[rule], None, sinks, outcome)
    return outcome


def step(reading: Reading, state: dict[str, Any] | None, now: float, sinks: Any, outcome: CheckOutcome) -> None:
    """One rule's transition: pending → fired while it holds, resolved (or forgotten) when it clears."""
    if not reading.firing:
        if state is not None:
            _resolve(reading.rule, state, reading, sinks, outcome)
        return
    state = state or {"since": now, "fired": False}
    if not state["fired"] and now - state["since"] >= reading.threshold.for_s:
        threshold = reading.threshold
        send_alert(sinks, SEVERITY[threshold.severity], f"{threshold.alert}: {describe(reading)}",
                   body(reading, state["since"]), rule=reading.rule, value=reading.value)
        state["fired"] = True
        outcome.fired.append(reading.rule)
    elif not state["fired"]:
        outcome.pending.append(reading.rule)
    alert_state.save_rule(reading.rule, {**state, "value": reading.value})


def _resolve(rule: str, state: dict[str, Any], reading: Reading | None, sinks: Any, outcome: CheckOutcome) -> None:
    if state.get("fired"):
        now = "no data now" if reading is None else f"now {reading.value:g}" + (
            f" ({reading.detail})" if reading.detail else "")
        send_alert(sinks, RESOLVED_SEVERITY, f"Resolved {rule}",
                   f"{now}; it fired at {_when(state['since'])}, value {state.get('value')}", rule=rule)
        outcome.resolved.append(rule)
    alert_state.clear_rule(rule)


def describe(reading: Reading) -> str:
    """What fired, e.g. "more than 200 messages waiting in queue leads"."""
    text = reading.threshold.describe()
    return text if reading.threshold.queue or not reading.queue else f"{text} in queue {reading.queue}"


def body(reading: Reading, since: float) -> str:
    detail = f" ({reading.detail})" if reading.detail else ""
    return f"value {reading.value:g}{detail}, limit {reading.threshold.limit:g}; holding since {_when(since)}"


def _when(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
