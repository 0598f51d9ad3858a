"""One ``audit_log`` row per job outcome, with the actor's per-step outcomes.

Statuses: ``completed``; ``retried`` (the attempt failed, another follows); ``dead`` (it will
not be retried and is in the dead letters); ``skipped`` (a duplicate or a stale tick).
Actor options: ``audit_action`` (default: the actor name, e.g. ``lead.automated`` for
``lead.created``) and ``audit_entity`` — ``(entity type, payload field)`` such as
``("lead", "lead_id")``.
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq import Middleware

from cep_automation import options as opt
from cep_automation.records.audit import AuditRow, AuditWriter
from cep_automation.runtime.job import pop_steps


class Audit(Middleware):
    """Queues an :class:`AuditRow` per outcome; a background writer inserts them in batches."""

    def __init__(self) -> None:
        self.writer = AuditWriter()
        self._started: dict[str, tuple[float, int, int | None]] = {}

    @property
    def actor_options(self) -> set[str]:
        return {"audit_action", "audit_entity"}

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.writer.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.writer.close()  # after the worker threads stopped: no row can follow

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        attempt = message.options.get("retries", 0) + 1
        self._started[message.message_id] = (time.monotonic(), attempt, first_wait_ms(message, attempt))

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            status, meta = "completed", {}
        else:
            status = "dead" if message.failed else "retried"
            meta = {"error": f"{type(exception).__name__}: {exception}"}
        self._add(broker, message, status, meta)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if opt.PARKED in message.options:  # waiting for its ordering key's turn: not an outcome
            self._started.pop(message.message_id, None)
            return
        error, stale = message.options.get(opt.ERROR), message.options.get(opt.STALE_TICK)
        if error:
            meta: dict[str, Any] = {"error": error["message"]}
        elif stale:
            meta = {"reason": f"stale tick: first delivery {stale['late_s']} s after {stale['tick']}"}
        else:
            meta = {"reason": "duplicate delivery"}
        self._add(broker, message, "dead" if message.failed else "skipped", meta)

    def _add(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, status: str, meta: dict[str, Any]) -> None:
        started, attempt, wait_ms = self._started.pop(message.message_id,
                                                      (None, message.options.get("retries", 0) + 1, None))
        actor = broker.actors.get(message.actor_name)
        options = actor.options if actor else {}
        entity_type, entity_id = None, None
        if options.get("audit_entity"):
            entity_type, field = options["audit_entity"]
            entity_id = message.kwargs.get(field)
        steps = pop_steps(message.message_id)
        if steps:
            meta["steps"] = steps
        self.writer.add(AuditRow(
            action=options.get("audit_action", message.actor_name), actor=message.actor_name,
            queue=message.queue_name, message_id=message.message_id, status=status,
            attempt=attempt,
            duration_ms=int((time.monotonic() - started) * 1000) if started else None,
            entity_type=entity_type, entity_id=None if entity_id is None else str(entity_id), metadata=meta,
            wait_ms=wait_ms,
        ))


def first_wait_ms(message: dramatiq.MessageProxy, attempt: int) -> int | None:
    """How long a first attempt waited to start: from its enqueue, or from when it was due if it was delayed
    (the queue history's wait percentiles); None for a retry, whose wait is its backoff."""
    if attempt > 1:
        return None
    due = max(message.message_timestamp, message.options.get("eta") or 0)
    return max(0, int(time.time() * 1000) - int(due))
