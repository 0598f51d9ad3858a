"""The effects ledger: run a side effect (a WhatsApp message, an email) once per job.

Each step's provider id is stored in PostgreSQL (``effects``, unique on job key and step)
before the job goes on, so a retry of the job repeats only the steps that did not succeed.
If PostgreSQL refuses that insert (it is down) after the provider acted, the effect is held in
Redis (``{namespace}:effects:held:<job key>``) and moved to PostgreSQL by the next attempt, so
the retry does not act twice. The one gap left — a crash between the provider's answer and the
insert — is the reason providers' own idempotency (Mailchimp's upsert) is used wherever they have one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from cep_automation.db import connection
from cep_automation.db.redis_client import as_text, get_redis, key
from cep_automation.errors import ServiceUnavailable, TransientError

logger = logging.getLogger("cep_automation.records.effects.Ledger")
HELD_TTL_S = 7 * 24 * 3600  # as long as a failed job's state is kept
DATABASE_DOWN = (ServiceUnavailable, psycopg.OperationalError)


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
        self._held: dict[str, dict[str, Any]] | None = None  # effects waiting in Redis, read once per job

    def done(self, step: str) -> Effect | None:
        """The recorded effect of ``step``, or None if it has not succeeded yet."""
        with connection() as conn:
            row = conn.execute("SELECT provider_id, result FROM effects WHERE job_key = %s AND step = %s",
                               (self.job_key, step)).fetchone()
        if row:
            return Effect(step, row["provider_id"], row["result"], replayed=True)
        held = self.held().get(step)
        if held is None:
            return None
        self._insert(step, held["provider_id"], held["result"])  # PostgreSQL is back: the ledger takes it over
        self._forget(step)
        return Effect(step, held["provider_id"], held["result"], replayed=True)

    def run(self, step: str, do: Callable[[], Any]) -> Effect:
        """Run ``do`` unless ``step`` already succeeded; its result (a provider id, or a dict with
        ``provider_id``) is recorded. Exceptions propagate and record nothing."""
        previous = self.done(step)
        if previous is not None:
            return previous
        result = do()
        provider_id = result.get("provider_id") if isinstance(result, dict) else result
        provider_id = None if provider_id is None else str(provider_id)
        stored = result if isinstance(result, dict) else {"value": result}
        try:
            self._insert(step, provider_id, stored)
        except DATABASE_DOWN as exc:
            # The provider has acted: failing the step now would make the retry act again.
            self._hold(step, provider_id, stored, exc)
        return Effect(step, provider_id, result, replayed=False)

    def steps(self) -> dict[str, str | None]:
        """Every recorded step and its provider id."""
        with connection() as conn:
            rows = conn.execute("SELECT step, provider_id FROM effects WHERE job_key = %s ORDER BY id",
                                (self.job_key,)).fetchall()
        return {row["step"]: row["provider_id"] for row in rows}

    def held(self) -> dict[str, dict[str, Any]]:
        """Effects done while PostgreSQL was down, by step (read from Redis once per ledger)."""
        if self._held is None:
            try:
                raw = get_redis().hgetall(self._held_key())
            except redis.RedisError as exc:  # unknown is not "none": acting now could act twice
                raise TransientError(f"effects ledger: Redis unavailable ({type(exc).__name__})") from None
            self._held = {as_text(name): json.loads(value) for name, value in raw.items()}
        return self._held

    def _insert(self, step: str, provider_id: str | None, result: Any) -> None:
        with connection() as conn:
            conn.execute(
                "INSERT INTO effects (job_key, step, provider_id, result) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (job_key, step) DO NOTHING",
                (self.job_key, step, provider_id, Jsonb(result)),
            )

    def _hold(self, step: str, provider_id: str | None, result: Any, cause: Exception) -> None:
        record = {"provider_id": provider_id, "result": result}
        try:
            pipe = get_redis().pipeline()
            pipe.hset(self._held_key(), step, json.dumps(record, default=str))
            pipe.expire(self._held_key(), HELD_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            logger.error("Step %s of %s done (provider id %s) but neither PostgreSQL (%s) nor Redis (%s) could "
                         "record it: a redelivery would repeat it", step, self.job_key, provider_id,
                         type(cause).__name__, type(exc).__name__)
            return
        self.held()[step] = record
        logger.warning("Step %s of %s done; PostgreSQL unavailable (%s), effect held in Redis until it is back",
                       step, self.job_key, type(cause).__name__)

    def _forget(self, step: str) -> None:
        get_redis().hdel(self._held_key(), step)
        self.held().pop(step, None)

    def _held_key(self) -> str:
        return key("effects", "held", self.job_key)
