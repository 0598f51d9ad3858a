"""The effects ledger: run a side effect (a WhatsApp message, an email) once per job.

Each step's provider id is stored in PostgreSQL (``effects``, unique on job key and step)
before the job goes on, so a retry of the job repeats only the steps that did not succeed.
If PostgreSQL refuses that insert (it is down) after the provider acted, the effect is held in
Redis (``{namespace}:effects:held:<job key>``) and moved to PostgreSQL by the next attempt, so
the retry does not act twice.

The gap left — a crash, or a timeout, between the provider's acting and the insert — is closed for
providers that confirm sends (:meth:`Ledger.run_confirmable`): an *intent* is written to Redis before the
send (``{namespace}:effects:intent:<job key>``), and an attempt that finds one asks the provider's
confirmations (:mod:`cep_automation.records.confirmations`) before it sends again, waiting up to a grace
period for one to arrive. Providers with their own idempotency (Mailchimp's upsert, the CRM webhook's key)
need neither.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from cep_automation.db import connection
from cep_automation.db.redis_client import as_text, get_redis, key
from cep_automation.errors import Postponed, ServiceUnavailable, TransientError, Unconfirmed

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
    unconfirmed: bool = False


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
            unconfirmed = isinstance(row["result"], dict) and "unconfirmed" in row["result"]
            return Effect(step, row["provider_id"], row["result"], replayed=True, unconfirmed=unconfirmed)
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
        try:
            result = do()
        except Unconfirmed as exc:
            # It may have gone and the provider cannot tell us: never repeat it (at most once), say so.
            logger.warning("Step %s of %s may have been done (%s); recorded as unconfirmed, not repeated",
                           step, self.job_key, exc)
            self._record(step, None, {"unconfirmed": str(exc)})
            return Effect(step, None, None, replayed=False, unconfirmed=True)
        provider_id = result.get("provider_id") if isinstance(result, dict) else result
        provider_id = None if provider_id is None else str(provider_id)
        # The provider has acted: with PostgreSQL down the effect is held, so the retry does not act again.
        self._record(step, provider_id, result if isinstance(result, dict) else {"value": result})
        return Effect(step, provider_id, result, replayed=False)

    def run_confirmable(self, step: str, send: Callable[[str], str], confirm: Callable[[str], str | None], *,
                        grace_s: float) -> Effect:
        """Run ``send(reference)`` once, for a provider that confirms sends but has no idempotency key.

        Parameters:
          send: sends with our ``reference`` and returns the provider id.
          confirm: the provider id the provider confirmed for a reference, or None.
          grace_s: how long after an unfinished attempt to wait for a confirmation before sending again.
        Raises:
          Postponed: an earlier attempt may have sent it and the grace period is not over.
        """
        previous = self.done(step)
        if previous is not None:
            return previous
        reference = f"{self.job_key}:{step}"
        intent = self._intent(step)
        if intent is not None:
            provider_id = confirm(reference)
            if provider_id is not None:
                logger.info("Step %s of %s: an earlier attempt sent it (confirmed as %s); not sending again",
                            step, self.job_key, provider_id)
                self._record(step, provider_id, {"value": provider_id, "confirmed": True})
                self._set_intent(step, None)
                return Effect(step, provider_id, provider_id, replayed=True)
            waited = time.time() - intent
            if waited < grace_s:
                raise Postponed(f"{step}: an earlier attempt may have sent it; waiting up to {grace_s - waited:.0f} s"
                                " more for the provider's confirmation", retry_after=min(grace_s - waited, 10))
            logger.warning("Step %s of %s: no confirmation %d s after an unfinished attempt; sending again",
                           step, self.job_key, waited)
        self._set_intent(step, time.time())
        try:
            provider_id = send(reference)
        except Unconfirmed:
            raise  # it may have gone: the intent stays, the next attempt checks first
        except Exception:
            self._set_intent(step, None)  # it surely did not go: the next attempt sends at once
            raise
        self._record(step, provider_id, {"value": provider_id})
        self._set_intent(step, None)
        return Effect(step, provider_id, provider_id, replayed=False)

    def _record(self, step: str, provider_id: str | None, stored: Any) -> None:
        try:
            self._insert(step, provider_id, stored)
        except DATABASE_DOWN as exc:
            self._hold(step, provider_id, stored, exc)

    def _intent(self, step: str) -> float | None:
        """When an unfinished attempt started to send ``step`` (Unix time), or None."""
        try:
            raw = get_redis().hget(self._intent_key(), step)
        except redis.RedisError as exc:  # unknown is not "none": sending now could send twice
            raise TransientError(f"effects ledger: Redis unavailable ({type(exc).__name__})") from None
        return float(raw) if raw else None

    def _set_intent(self, step: str, at: float | None) -> None:
        try:
            if at is None:
                get_redis().hdel(self._intent_key(), step)
                return
            pipe = get_redis().pipeline()
            pipe.hset(self._intent_key(), step, f"{at:.3f}")
            pipe.expire(self._intent_key(), HELD_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            if at is not None:  # without the intent a crash could not be reconciled: do not send
                raise TransientError(f"effects ledger: Redis unavailable ({type(exc).__name__})") from None
            logger.warning("Intent of step %s of %s not cleared (%s)", step, self.job_key, type(exc).__name__)

    def _intent_key(self) -> str:
        return key("effects", "intent", self.job_key)

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
