"""``dead_letters.auto_retry``: every five minutes, dead letters of transient errors are retried by themselves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cep_automation.runtime import auto_retry
from cep_automation.runtime.actor import job


class AutoRetryPayload(BaseModel):
    """No fields: each queue's rules (``queues.QUEUE_RULES``) say what is due."""

    model_config = ConfigDict(extra="forbid")


@job("dead_letters.auto_retry", schema=AutoRetryPayload)
def dead_letters_auto_retry() -> dict[str, Any]:
    """Retry each queue's transient dead letters that are due (letters locked: retriers share the work)."""
    return {"retried": auto_retry.retry_transient()}
