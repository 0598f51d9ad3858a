"""Priorities that age: a job's place in a worker's line is when it was enqueued plus what its priority allows.

Dramatiq orders the jobs a worker has fetched by their actor's priority alone, so a steady stream of urgent jobs
starves everything else for ever, and one message cannot be more urgent than its actor. Here each job gets a
*deadline*: its enqueue time plus ``priority × PRIORITY_STEP_S`` (priority 0: now; medium, 5: 50 s; low, 10:
100 s), at most its queue's ``max_wait_s``; workers start the earliest deadline first. A low-priority job is
served ahead of fresher urgent work once it has waited its allowance: nothing starves. The priority is the
message's ``priority`` option (``send_with_options(priority=…)``, ``--priority``, ``?priority=``), else its
actor's (the policy table).
"""

from __future__ import annotations

from typing import Any

from cep_automation.queues import QUEUE_RULES

PRIORITY_STEP_S = 10.0  # how much longer a job may wait behind fresher work per level of priority


def deadline_ms(message: Any, actor_priority: int) -> int:
    """When ``message`` should start at the latest, in ms since the epoch (lower starts first)."""
    given = message.options.get("priority")
    priority = actor_priority if given is None else int(given)
    allowance_s = max(0.0, priority * PRIORITY_STEP_S)
    rules = QUEUE_RULES.get(message.queue_name.removesuffix(".DQ"))
    if rules is not None and rules.max_wait_s is not None:
        allowance_s = min(allowance_s, rules.max_wait_s)
    return int(message.message_timestamp + allowance_s * 1000)
