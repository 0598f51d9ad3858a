"""Our Dramatiq middleware, one class per module."""

from __future__ import annotations

from cep_automation.middleware.job_state import JobState
from cep_automation.middleware.schedule_guard import ScheduleGuard

__all__ = ["JobState", "ScheduleGuard"]
