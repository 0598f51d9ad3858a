"""Actors for middleware tests, importable by worker processes too (``dramatiq cep_automation.actors sample_actors``).

``testing.steps`` runs three ledger steps per item; ``fail`` says how many calls of a step
fail before it succeeds, so a test can make one step fail once, or for ever.
"""

from __future__ import annotations

import dramatiq
from pydantic import BaseModel, Field

import cep_automation.actors  # noqa: F401  (configures the broker with our middleware before these actors)
from cep_automation.db.redis_client import get_redis, key
from cep_automation.errors import PermanentError, TransientError
from cep_automation.records.effects import Ledger
from cep_automation.runtime.actor import CepActor
from cep_automation.runtime.job import current_job

FAST = {"actor_class": CepActor, "queue_name": "testing", "max_retries": 2, "min_backoff": 20,
        "max_backoff": 100, "time_limit": 20_000}
STEPS = ("mailchimp", "whatsapp", "crm")


class StepsPayload(BaseModel):
    item: int = Field(ge=1)
    fail: dict[str, int] = {}
    permanent: bool = False


def calls(item: int, step: str) -> int:
    """How many times a step's side effect was attempted for an item."""
    return int(get_redis().get(key("test", "calls", str(item), step)) or 0)


def _side_effect(item: int, step: str, fail: dict[str, int], permanent: bool) -> str:
    attempt = get_redis().incr(key("test", "calls", str(item), step))
    if attempt <= fail.get(step, 0):
        if permanent:
            raise PermanentError(f"{step} refused item {item}")
        raise TransientError(f"{step} unavailable (call {attempt})", retry_after=0.05)
    return f"{step}-{item}"


@dramatiq.actor(actor_name="testing.steps", schema=StepsPayload, idempotency_key="testing.steps:{item}",
                audit_action="testing.automated", audit_entity=("item", "item"), **FAST)
def steps_actor(item: int, fail: dict[str, int] | None = None, permanent: bool = False) -> dict[str, str]:
    ledger, job, failed = Ledger(f"testing.steps:{item}"), current_job(), []
    for step in STEPS:
        try:
            effect = ledger.run(step, lambda step=step: _side_effect(item, step, fail or {}, permanent))
            job.step(step, "success", "already done" if effect.replayed else None)
        except (TransientError, PermanentError) as exc:
            job.step(step, "failed", str(exc))
            failed.append(exc)
    if failed:
        raise failed[0] if isinstance(failed[0], PermanentError) else TransientError(
            f"{len(failed)} step(s) failed: {failed[0]}", retry_after=0.05)
    return ledger.steps()


@dramatiq.actor(actor_name="testing.noop", **FAST)
def noop() -> None:
    """Does nothing; for counting deliveries and overhead."""
