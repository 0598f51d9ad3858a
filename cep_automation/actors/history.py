"""``history.snapshot``: every minute, each queue's depth, throughput, waits and errors into ``queue_history``.

One snapshot per tick: periodiq's tick is enqueued once however many schedulers send it (its idempotency key
``history.snapshot@<tick>``, as for ``alerts.check``), and a manual run rewrites the same minute's rows (an
upsert), so no lock is needed. Each run also folds minute rows older than 30 days into hourly rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict

from cep_automation import options as opt
from cep_automation.middleware.schedules import tick_time
from cep_automation.records import queue_history
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job


class SnapshotPayload(BaseModel):
    """No fields: a tick measures the minute before it."""

    model_config = ConfigDict(extra="forbid")


def tick_of_current_message() -> dt.datetime:
    """periodiq's tick of the message being processed, else now (a manual run)."""
    from dramatiq.middleware import CurrentMessage

    message = CurrentMessage.get_current_message()
    tick = message.options.get(opt.SCHEDULED_AT) if message is not None else None
    return dt.datetime.fromtimestamp(tick_time(tick), dt.UTC) if tick else dt.datetime.now(dt.UTC)


@job("history.snapshot", schema=SnapshotPayload)
def history_snapshot() -> dict[str, Any]:
    """Write the minute before the tick for every queue; fold what is older than 30 days."""
    tick = tick_of_current_message()
    rows = queue_history.snapshot(tick)
    folded, dropped = queue_history.downsample(tick)
    current_job().progress(100)
    return {"minute": queue_history.minute_of(tick).isoformat(), "queues": len(rows), "folded": folded,
            "dropped": dropped}
