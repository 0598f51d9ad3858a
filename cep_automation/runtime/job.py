"""The running job as seen from inside an actor: progress, log lines and step outcomes.

``current_job()`` works the same whether the actor runs in a worker or is called directly (unit
tests, scripts): outside a worker the reports are checked and then go nowhere.
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.middleware import CurrentMessage

from cep_automation.queues import policy
from cep_automation.records import job_state

STEP_STATUSES = ("success", "skipped", "failed")

# Per-step outcomes of the messages being processed in this process, read by the Audit middleware.
_steps: dict[str, dict[str, dict[str, Any]]] = {}
_steps_lock = threading.Lock()


class JobHandle:
    """One message's reports; ``message_id`` None means "not in a worker", reports are dropped."""

    def __init__(self, message_id: str | None) -> None:
        self.message_id = message_id

    def progress(self, percent: int) -> None:
        """Report progress from 0 to 100."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent}")
        if self.message_id:
            job_state.record_progress(self.message_id, percent)

    def log(self, line: str) -> None:
        """Append a log line readable with ``cep-automation jobs show``."""
        if self.message_id:
            job_state.append_log(self.message_id, line)

    def step(self, name: str, status: str, detail: str | None = None) -> None:
        """Record one step's outcome (``success``, ``skipped`` or ``failed``) for the audit log."""
        if status not in STEP_STATUSES:
            raise ValueError(f"step status must be one of {', '.join(STEP_STATUSES)}, got {status!r}")
        if not self.message_id:
            return
        outcome: dict[str, Any] = {"status": status}
        if detail:
            outcome["detail"] = detail
        with _steps_lock:
            _steps.setdefault(self.message_id, {})[name] = outcome
        self.log(f"{name}: {status}" + (f" ({detail})" if detail else ""))


def pop_steps(message_id: str) -> dict[str, dict[str, Any]]:
    """The step outcomes recorded for a message, forgotten once read."""
    with _steps_lock:
        return _steps.pop(message_id, {})


def is_last_attempt() -> bool:
    """Whether the message this thread runs is on its job's last attempt (its policy's attempts); False outside
    a worker."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return False
    return bool(message.options.get("retries", 0) >= policy(message.actor_name).max_retries)


def current_job() -> JobHandle:
    """The handle of the message being processed by this thread."""
    message = CurrentMessage.get_current_message()
    return JobHandle(message.message_id if message is not None else None)
