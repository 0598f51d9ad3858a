"""The effects ledger: run a side effect (a WhatsApp message, an email) once per job.

A job's recorded steps are read once, when its first step asks (PostgreSQL ``effects``, unique on job key
and step, plus what Redis holds for it). Each step's provider id is then written to Redis as soon as the
provider answers (``{namespace}:effects:held:<job key>``, kept by Redis's append-only file; steps of any job
that end while that round trip is on the wire share the next one: a group commit),
and all of a job's new effects go to PostgreSQL in one transaction when the job's steps are done
(:meth:`Ledger.flush`): two database transactions per job instead of two per step. A retry or a redelivery
finds every step done before it, in PostgreSQL or still in Redis, and repeats only the others. If
PostgreSQL is down at the flush the effects stay in Redis and the next attempt flushes them; if Redis is
down when a step is recorded, the effect goes straight to PostgreSQL.

The gap left — a crash, or a timeout, between the provider's acting and the record — is closed for
providers that confirm sends (:meth:`Ledger.run_confirmable`): an *intent* is written to Redis before the
send (``{namespace}:effects:intent:<job key>``), and an attempt that finds one asks the provider's
confirmations (:mod:`cep_automation.records.confirmations`) before it sends again, waiting up to a grace
period for one to arrive. Since the intent answers for such a step until its record replaces it, that record may
wait for the thread's next write even past another provider call (:meth:`Ledger.batched`). Providers with their
own idempotency (Mailchimp's upsert, the CRM webhook's key) need neither.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from cep_automation.db import connection
from cep_automation.db.redis_client import GroupCommit, as_text, get_redis, key
from cep_automation.errors import Postponed, ServiceUnavailable, TransientError, Unconfirmed
from cep_automation.records.state_writer import writer

logger = logging.getLogger("cep_automation.records.effects.Ledger")
HELD_TTL_S = 7 * 24 * 3600  # as long as a failed job's state is kept
INSERT_ROWS = 100  # effects per INSERT statement at the flush (a job has a handful)
DATABASE_DOWN = (ServiceUnavailable, psycopg.OperationalError)
_held_writes = GroupCommit()  # every job's effects and intents: one round trip for all the steps that just ended


Write = Callable[[psycopg.Connection[Any]], Any]  # a step done in the flush's transaction: what it returns is kept


def _given_or_own(conn: psycopg.Connection[Any] | None) -> AbstractContextManager[psycopg.Connection[Any]]:
    """The caller's connection (its transaction), or a pooled one in a transaction of its own."""
    return nullcontext(conn) if conn is not None else connection()


class _WriteFailed(Exception):
    def __init__(self, step: str, cause: Exception) -> None:
        super().__init__(step)
        self.step, self.cause = step, cause


@dataclass(frozen=True)
class Effect:
    """A step already done: its provider id and whatever else the step returned."""

    step: str
    provider_id: str | None
    result: Any
    replayed: bool
    unconfirmed: bool = False


def _effect(step: str, provider_id: str | None, result: Any, *, replayed: bool = True) -> Effect:
    unconfirmed = isinstance(result, dict) and "unconfirmed" in result
    return Effect(step, provider_id, result, replayed=replayed, unconfirmed=unconfirmed)


def _hold(pipe: Any, held_key: str, step: str, record: dict[str, Any], first: bool) -> None:
    """A step's record into Redis's held effects; the run's first write there sets the key's retention."""
    pipe.hset(held_key, step, json.dumps(record, default=str))
    if first:
        pipe.expire(held_key, HELD_TTL_S)


@dataclass(frozen=True)
class _Riding:
    """A step's record not yet sent: its ``write`` to the pipeline, and what to do if Redis does not take it."""

    step: str
    record: dict[str, Any]
    write: Callable[[Any], None]
    first: bool  # this write sets the held key's retention
    covered: bool  # an intent in Redis answers for the step until this arrives: the next send need not wait for it


class HeldCleared:
    """Drop effects from Redis once PostgreSQL has them. Sent later, by the state writer: until then a read finds
    them in PostgreSQL first, and if it never goes (Redis away for long) the key's retention removes them."""

    __slots__ = ("name", "steps")

    def __init__(self, name: str, steps: list[str]) -> None:
        self.name, self.steps = name, steps

    def __call__(self, pipe: Any) -> None:
        pipe.hdel(self.name, *self.steps)


# The held effects and intents of the job this thread runs, read with its idempotency claim: (job key, held, intents).
_prefetched: ContextVar[tuple[str, dict[Any, Any], dict[Any, Any]] | None] = ContextVar("cep_effects_prefetched",
                                                                                        default=None)


def prefetch_keys(job_key: str) -> list[str]:
    """The Redis keys a ledger on ``job_key`` reads first (held effects, intents): the idempotency claim of a job
    whose key is its ledger's reads them in its own round trip."""
    return [key("effects", "held", job_key), key("effects", "intent", job_key)]


def prefetched(job_key: str, held: dict[Any, Any], intents: dict[Any, Any]) -> None:
    """What :func:`prefetch_keys` held when this thread's job claimed its run: its ledger reads this, not Redis.
    Nothing else can write them meanwhile: the claim keeps every other run of the key out."""
    _prefetched.set((job_key, held, intents))


def forget_prefetched() -> None:
    """The job ended (its ledger may not have asked): the next job on this thread must not see it."""
    _prefetched.set(None)


class Ledger:
    """The steps of one job, keyed like ``lead.created:<lead id>``; safe to use from several threads."""

    def __init__(self, job_key: str) -> None:
        self.job_key = job_key
        self._lock = threading.Lock()
        self._recorded: dict[str, Effect] | None = None  # every step done, read once per job
        self._unflushed: dict[str, dict[str, Any]] = {}  # steps recorded in Redis, not yet in PostgreSQL
        self._intents: dict[str, float] = {}  # step → when an attempt started sending it (read with the steps)
        self._timed: set[str] = set()  # Redis keys this run has given their retention: once is enough
        self._riding = threading.local()  # in batched(): this thread's records waiting for its next Redis write

    def done(self, step: str) -> Effect | None:
        """The recorded effect of ``step``, or None if it has not succeeded yet."""
        return self._load().get(step)

    def preload(self, conn: psycopg.Connection[Any]) -> None:
        """Read the steps done before through ``conn``, in the caller's transaction (e.g. the one that loads the
        job's subject): one database transaction fewer per job."""
        self._load(conn)

    def _load(self, conn: psycopg.Connection[Any] | None = None) -> dict[str, Effect]:
        """Every recorded step of this job: one PostgreSQL query and one Redis read, the first time."""
        with self._lock:
            if self._recorded is None:
                with _given_or_own(conn) as using:
                    rows = using.execute("SELECT step, provider_id, result FROM effects WHERE job_key = %s",
                                         (self.job_key,)).fetchall()
                recorded = {row["step"]: _effect(row["step"], row["provider_id"], row["result"]) for row in rows}
                held_now, self._intents = self._held_and_intents()
                for step, held in held_now.items():
                    if step not in recorded:  # done while PostgreSQL was away, or by an attempt that died
                        recorded[step] = _effect(step, held["provider_id"], held["result"])
                        self._unflushed[step] = held
                self._recorded = recorded
            return self._recorded

    def run(self, step: str, do: Callable[[], Any]) -> Effect:
        """Run ``do`` unless ``step`` already succeeded; its result (a provider id, or a dict with
        ``provider_id``) is recorded. Exceptions propagate and record nothing."""
        previous = self.done(step)
        if previous is not None:
            return previous
        self._send_uncovered()  # what earlier steps did is in Redis before this one acts
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

    def run_at_most_once(self, step: str, do: Callable[[], Any]) -> Effect:
        """Like :meth:`run`, for a send that must never be repeated and that the provider cannot confirm (a
        sequence's email): an intent is written before ``do``; an attempt that finds one (an earlier attempt died
        while sending) records the step as unconfirmed instead of sending it again."""
        previous = self.done(step)
        if previous is not None:
            return previous
        if self._intent(step) is not None:
            logger.warning("Step %s of %s: an earlier attempt stopped while sending it; recorded as unconfirmed, "
                           "not repeated", step, self.job_key)
            self._record(step, None, {"unconfirmed": "an earlier attempt stopped while sending"}, clear_intent=True)
            return Effect(step, None, None, replayed=False, unconfirmed=True)
        self._set_intent(step, time.time())
        try:
            result = do()
        except Unconfirmed as exc:
            self._record(step, None, {"unconfirmed": str(exc)}, clear_intent=True)
            return Effect(step, None, None, replayed=False, unconfirmed=True)
        except Exception:
            self._set_intent(step, None)  # it surely did not go: the next attempt sends at once
            raise
        provider_id = result.get("provider_id") if isinstance(result, dict) else result
        provider_id = None if provider_id is None else str(provider_id)
        self._record(step, provider_id, result if isinstance(result, dict) else {"value": result}, clear_intent=True)
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
            self._send_riding()
            provider_id = confirm(reference)
            if provider_id is not None:
                logger.info("Step %s of %s: an earlier attempt sent it (confirmed as %s); not sending again",
                            step, self.job_key, provider_id)
                self._record(step, provider_id, {"value": provider_id, "confirmed": True}, clear_intent=True)
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
        # The intent stays in Redis until this record replaces it: a crash before it arrives makes the retry ask the
        # provider's confirmations, so the record may wait for this thread's next write even past a provider call.
        self._record(step, provider_id, {"value": provider_id}, clear_intent=True, covered=True)
        return Effect(step, provider_id, provider_id, replayed=False)

    def _record(self, step: str, provider_id: str | None, stored: Any, *, clear_intent: bool = False,
                covered: bool = False) -> None:
        """The provider has acted: note it where the next attempt will see it, before anything else (and drop
        the step's intent in the same round trip: the effect now answers for it). ``covered``: until the record
        arrives, the step's intent makes a retry ask the provider instead of acting again."""
        recorded = self._load()
        record = {"provider_id": provider_id, "result": stored}
        held_key, intent_key = self._held_key(), self._intent_key()
        first = self._first_write(held_key)

        def write(pipe: Any) -> None:
            _hold(pipe, held_key, step, record, first)
            if clear_intent:
                pipe.hdel(intent_key, step)

        with self._lock:
            recorded[step] = _effect(step, provider_id, stored)  # what any later ask sees: done before
            if clear_intent:
                self._intents.pop(step, None)
        riding = getattr(self._riding, "records", None)
        if riding is not None:  # in batched(): it goes with this thread's next write, before its next action
            riding.append(_Riding(step, record, write, first, covered))
            return
        self._send([_Riding(step, record, write, first, covered)])

    def _send(self, records: list[_Riding], then: Callable[[Any], None] | None = None) -> None:
        """Write ``records`` (and ``then``, e.g. the next step's intent) in one round trip. A record Redis did not
        take goes to PostgreSQL at once; ``then``'s failure is raised."""
        def write(pipe: Any) -> None:
            for each in records:
                each.write(pipe)
            if then is not None:
                then(pipe)

        try:
            _held_writes.write(write)
        except redis.RedisError as exc:
            for each in records:
                self._not_written(self._held_key(), each.first)
                self._write_through(each.step, each.record, exc)
            if then is not None:
                raise
        else:
            with self._lock:
                self._unflushed.update((each.step, each.record) for each in records)

    def _send_uncovered(self) -> None:
        """Before a provider acts: send this thread's waiting records if any is not covered by an intent (all of
        them, in that round trip); covered ones may wait for the thread's next write."""
        riding = getattr(self._riding, "records", None)
        if riding and not all(each.covered for each in riding):
            self._send_riding()

    def send_waiting(self) -> None:
        """Send this thread's waiting records now (e.g. before it waits for other threads' steps)."""
        self._send_riding()

    def _send_riding(self, then: Callable[[Any], None] | None = None) -> None:
        """Send this thread's waiting records now (with ``then``, if given)."""
        riding = getattr(self._riding, "records", None)
        if riding:
            self._riding.records = []
            self._send(riding, then)
        elif then is not None:
            _held_writes.write(then)

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Steps run one after another in this thread: each step's record rides with this thread's next write to
        Redis (the next step's intent) instead of a round trip of its own. None waits past the flush or the end of
        the block, nor past this thread's next call to a provider unless an intent covers it (a confirmable
        send's). Nested, the outer block is the one that ends."""
        if getattr(self._riding, "records", None) is not None:
            yield
            return
        self._riding.records = []
        try:
            yield
        finally:
            try:
                self._send_riding()
            finally:
                self._riding.records = None

    def run_in_redis(self, step: str, write: Callable[[Any], Any]) -> Effect:
        """A step whose effect is itself a write to Redis (a counter): ``write(pipe)`` adds its commands and returns
        what to record. The effect and its record go in one round trip, the effect first; if Redis fails the step
        fails (whether the effect went is unknown), as it would on its own."""
        previous = self.done(step)
        if previous is not None:
            return previous
        held_key = self._held_key()
        first = self._first_write(held_key)
        done: list[dict[str, Any]] = []

        def effect_and_record(pipe: Any) -> None:
            result = write(pipe)
            record = {"provider_id": str(result), "result": {"value": result}}
            _hold(pipe, held_key, step, record, first)
            done.append(record)

        try:
            self._send_riding(effect_and_record)
        except redis.RedisError:
            self._not_written(held_key, first)
            raise
        record = done[0]
        with self._lock:
            self._recorded[step] = _effect(step, record["provider_id"], record["result"])  # type: ignore[index]
            self._unflushed[step] = record
        return Effect(step, record["provider_id"], record["result"]["value"], replayed=False)

    def _first_write(self, name: str) -> bool:
        """Whether this run writes Redis key ``name`` for the first time: that write sets its retention (an EXPIRE
        per step was 7 of a lead's 90 Redis commands); the run lasts seconds, the retention days."""
        with self._lock:
            if name in self._timed:
                return False
            self._timed.add(name)
            return True

    def _not_written(self, name: str, first: bool) -> None:
        """The write that was to set ``name``'s retention failed: the next one sets it."""
        if first:
            with self._lock:
                self._timed.discard(name)

    def _write_through(self, step: str, record: dict[str, Any], cause: Exception) -> None:
        """Redis is away: the effect goes to PostgreSQL at once."""
        try:
            self._insert([(step, record["provider_id"], record["result"])])
        except DATABASE_DOWN as exc:
            logger.error("Step %s of %s done (provider id %s) but neither Redis (%s) nor PostgreSQL (%s) could "
                         "record it: a redelivery would repeat it", step, self.job_key, record["provider_id"],
                         type(cause).__name__, type(exc).__name__)

    def flush(self, writes: Mapping[str, Write] | None = None) -> dict[str, Effect | Exception]:
        """Move this job's new effects to PostgreSQL in one transaction; with PostgreSQL down they stay in Redis.

        ``writes`` are steps whose effect is itself a write to PostgreSQL (e.g. entering a lead in its sequences):
        each runs in that same transaction unless done before, so the write and its record commit together, once,
        at no extra transaction. Returns each one's effect, or the exception that failed it (PostgreSQL being
        down included: the step is then retried with the job).
        """
        self._send_riding()
        results: dict[str, Effect | Exception] = {}
        todo: dict[str, Write] = {}
        for step, write in (writes or {}).items():
            previous = self.done(step)
            if previous is None:
                todo[step] = write
            else:
                results[step] = previous
        with self._lock:
            pending = dict(self._unflushed)
        while pending or todo:
            try:
                written = self._write(pending, todo)
            except DATABASE_DOWN as exc:
                logger.warning("Effects of %s kept in Redis until PostgreSQL is back (%s)", self.job_key,
                               type(exc).__name__)
                results.update({step: TransientError(f"PostgreSQL unavailable ({type(exc).__name__})")
                                for step in todo})
                return results
            except _WriteFailed as failed:  # that step's write failed: the rest go again without it
                results[failed.step] = failed.cause
                del todo[failed.step]
                continue
            results.update(written)
            break
        if pending:  # nobody waits for this clean-up: it goes with the job state's next batch, off this thread
            writer.submit(HeldCleared(self._held_key(), list(pending)))
        with self._lock:
            for step in pending:
                self._unflushed.pop(step, None)
            for step, effect in results.items():
                if isinstance(effect, Effect):
                    self._recorded.setdefault(step, effect)  # type: ignore[union-attr]
        return results

    def _write(self, pending: dict[str, dict[str, Any]], todo: dict[str, Write]) -> dict[str, Effect]:
        """One transaction: ``todo``'s writes, then the rows of every new effect (theirs included)."""
        rows = [(step, r["provider_id"], r["result"]) for step, r in pending.items()]
        written: dict[str, Effect] = {}
        with connection() as conn:
            for step, write in todo.items():
                try:
                    result = write(conn)
                except DATABASE_DOWN:
                    raise
                except Exception as exc:
                    raise _WriteFailed(step, exc) from exc
                stored = result if isinstance(result, dict) else {"value": result}
                rows.append((step, None, stored))
                written[step] = Effect(step, None, result, replayed=False)
            self._insert(rows, conn)
        return written

    def _intent(self, step: str) -> float | None:
        """When an unfinished attempt started to send ``step`` (Unix time), or None (read with the steps)."""
        self._load()
        with self._lock:
            return self._intents.get(step)

    def _set_intent(self, step: str, at: float | None) -> None:
        with self._lock:
            if at is None:
                self._intents.pop(step, None)
            else:
                self._intents[step] = at
        try:
            if at is None:
                get_redis().hdel(self._intent_key(), step)
                return
            intent_key = self._intent_key()
            first = self._first_write(intent_key)

            def write(pipe: Any) -> None:
                pipe.hset(intent_key, step, f"{at:.3f}")
                if first:
                    pipe.expire(intent_key, HELD_TTL_S)

            try:
                self._send_riding(write)  # earlier steps' records ride with it
            except redis.RedisError:
                self._not_written(intent_key, first)
                raise
        except redis.RedisError as exc:
            if at is not None:  # without the intent a crash could not be reconciled: do not send
                raise TransientError(f"effects ledger: Redis unavailable ({type(exc).__name__})") from None
            logger.warning("Intent of step %s of %s not cleared (%s)", step, self.job_key, type(exc).__name__)

    def _intent_key(self) -> str:
        return prefetch_keys(self.job_key)[1]

    def steps(self) -> dict[str, str | None]:
        """Every recorded step and its provider id (in PostgreSQL, or still in Redis)."""
        with connection() as conn:
            rows = conn.execute("SELECT step, provider_id FROM effects WHERE job_key = %s ORDER BY id",
                                (self.job_key,)).fetchall()
        found = {row["step"]: row["provider_id"] for row in rows}
        for step, held in self.held().items():
            found.setdefault(step, held["provider_id"])
        return found

    def held(self) -> dict[str, dict[str, Any]]:
        """Effects recorded in Redis and not yet in PostgreSQL, by step (after this process's queued clean-ups)."""
        writer.flush()
        return self._held_and_intents()[0]

    def _held_and_intents(self) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        """Effects held in Redis by step, and unfinished attempts' intents by step: one round trip, or none when
        the job's idempotency claim read them already (:func:`prefetched`)."""
        found = _prefetched.get()
        if found is not None and found[0] == self.job_key:
            _prefetched.set(None)
            held, intents = found[1], found[2]
        else:
            try:
                pipe = get_redis().pipeline(transaction=False)
                pipe.hgetall(self._held_key())
                pipe.hgetall(self._intent_key())
                held, intents = pipe.execute()
            except redis.RedisError as exc:  # unknown is not "none": acting now could act twice
                raise TransientError(f"effects ledger: Redis unavailable ({type(exc).__name__})") from None
        return ({as_text(name): json.loads(value) for name, value in held.items()},
                {as_text(name): float(value) for name, value in intents.items()})

    def _insert(self, rows: list[tuple[str, str | None, Any]], conn: psycopg.Connection[Any] | None = None) -> None:
        """One INSERT of every row (up to :data:`INSERT_ROWS`): a third less CPU than ``executemany``'s pipeline of
        one statement per row, for the few rows a job has."""
        with _given_or_own(conn) as using:
            for start in range(0, len(rows), INSERT_ROWS):
                chunk = rows[start:start + INSERT_ROWS]
                using.execute(
                    "INSERT INTO effects (job_key, step, provider_id, result) VALUES "
                    + ", ".join(["(%s, %s, %s, %s)"] * len(chunk)) + " ON CONFLICT (job_key, step) DO NOTHING",
                    [value for step, provider_id, result in chunk
                     for value in (self.job_key, step, provider_id, Jsonb(result))],
                )

    def _held_key(self) -> str:
        return prefetch_keys(self.job_key)[0]
