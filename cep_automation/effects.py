"""The effects ledger: run a side effect (a WhatsApp message, an email) once per job.

Each step's provider id is stored in PostgreSQL (``effects``, unique on job key and step)
before the job goes on, so a retry of the job repeats only the steps that did not succeed.
The one gap left — a crash between the provider's answer and the insert — is the reason
providers' own idempotency (Mailchimp's upsert) is used wherever they have one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from cep_automation.db import connection


@dataclass(frozen=True)
class Effect:
    """A step already done: its provider id and whatever else the step returned."""

    step: str
    provider_id: str | None
    result: Any
    replayed: bool


class Ledger:
    """The steps of one job, keyed like ``lead.created:<lead id>``."""

    def __init__(self, job_key: str) -> None:
        self.job_key = job_key

    def done(self, step: str) -> Effect | None:
        """The recorded effect of ``step``, or None if it has not succeeded yet."""
        with connection() as conn:
            row = conn.execute("SELECT provider_id, result FROM effects WHERE job_key = %s AND step = %s",
                               (self.job_key, step)).fetchone()
        return Effect(step, row["provider_id"], row["result"], replayed=True) if row else None

    def run(self, step: str, do: Callable[[], Any]) -> Effect:
        """Run ``do`` unless ``step`` already succeeded; its result (a provider id, or a dict with
        ``provider_id``) is recorded. Exceptions propagate and record nothing."""
        previous = self.done(step)
        if previous is not None:
            return previous
        result = do()
        provider_id = result.get("provider_id") if isinstance(result, dict) else result
        provider_id = None if provider_id is None else str(provider_id)
        with connection() as conn:
            conn.execute(
                "INSERT INTO effects (job_key, step, provider_id, result) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (job_key, step) DO NOTHING",
                (self.job_key, step, provider_id, Jsonb(result if isinstance(result, dict) else {"value": result})),
            )
        return Effect(step, provider_id, result, replayed=False)

    def steps(self) -> dict[str, str | None]:
        """Every recorded step and its provider id."""
        with connection() as conn:
            rows = conn.execute("SELECT step, provider_id FROM effects WHERE job_key = %s ORDER BY id",
                                (self.job_key,)).fetchall()
        return {row["step"]: row["provider_id"] for row in rows}
