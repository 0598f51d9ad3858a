"""``alerts.check``: every minute, the built-in alert rules (:mod:`cep_automation.runtime.alert_rules`).

One check at a time: periodiq's tick is enqueued once however many schedulers send it (its idempotency key),
and a Redis lock keeps a manual run from overlapping a scheduled one.
"""

from __future__ import annotations

from typing import Any

from cep_automation.queues import policy
from cep_automation.records import alert_state
from cep_automation.runtime import alert_rules
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job


@job("alerts.check")
def alerts_check() -> dict[str, Any]:
    """Evaluate every alert threshold; send what fired and what resolved."""
    owner = current_job().message_id or "direct-call"
    if not alert_state.try_lock(owner, policy("alerts.check").time_limit_s):
        return {"skipped": "another alerts.check is running"}
    try:
        return alert_rules.check().asdict()
    finally:
        alert_state.unlock(owner)
