"""``schedules.release``: every minute, jobs held in PostgreSQL that are due go to their queues."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cep_automation.runtime import scheduling
from cep_automation.runtime.actor import job


class ReleasePayload(BaseModel):
    """No fields: a tick releases whatever is due."""

    model_config = ConfigDict(extra="forbid")


@job("schedules.release", schema=ReleasePayload)
def schedules_release() -> dict[str, Any]:
    """Release the held jobs due within the next 90 s, in batches of 1,000 until none is left (rows locked: several
    releasers share the work)."""
    outcome = scheduling.release_due()
    return {"released": outcome.released, "failed": outcome.failed, "full_queues": outcome.full}
