"""Records each message's state (queued, active, retrying, completed, failed, skipped) in Redis."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.records import job_state


class JobState(Middleware):
    """Keeps :mod:`cep_automation.records.job_state` up to date for every message.

    Must sit before ``Retries`` in the stack: after-hooks run in reverse order, so it then
    sees ``message.failed`` as set by ``Retries`` when the last attempt fails.
    """

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if message.options.get("retries"):
            job_state.record(message.message_id, "retrying")
        elif job_state.queued_written.get():  # the enqueue script wrote it, in the same round trip
            return
        else:
            job_state.record(message.message_id, "queued", only_if_new=True, actor=message.actor_name,
                        queue=message.queue_name)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        attempt = message.options.get("retries", 0) + 1
        job_state.record(message.message_id, "active", actor=message.actor_name, queue=message.queue_name,
                         attempt=attempt)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            job_state.record(message.message_id, "completed", result=_jsonable(result), progress=100)
        elif message.failed:
            job_state.record(message.message_id, "failed", error=f"{type(exception).__name__}: {exception}")
        # Otherwise Retries re-enqueued it and after_enqueue marked it "retrying".

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if opt.PARKED in message.options:  # waiting for its ordering key's turn: still queued
            job_state.record(message.message_id, "queued")
            return
        job_state.record(message.message_id, "skipped")


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (dict, list)) else {"value": value}
