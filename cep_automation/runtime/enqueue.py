"""The one way a job is enqueued: Python ``send``, the HTTP ingress, the CLI, the Meta webhook,
dead-letter retries and the scheduler all come through :func:`enqueue`.

It validates the payload once, works out the idempotency key, claims it atomically in Redis
(``SET NX``: of two racing identical requests exactly one wins, the other gets the winner's
message id and ``duplicate=True``) and enqueues. On the Redis broker the claim and the enqueue are one
script (both happen or neither); on other brokers the claim is given back if the enqueue fails.
The worker validates once more when it processes the message (the ``PayloadValidation``
middleware), for messages written by an older producer.

Flow control at the door (docs/architecture.md, "Flow control"): a payload over ``CEP_MAX_PAYLOAD_BYTES`` is
refused here, never at the worker; a queue past its soft limit takes the job deferred, past its hard limit
refuses it (``runtime/backpressure.py``); a job due further ahead than ``CEP_SCHEDULE_HOLD_AFTER_S``, or
debounced, is held in PostgreSQL (``records/scheduled_jobs.py``) and comes back through here when it is due.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import dramatiq
import psycopg
from psycopg.rows import DictRow

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import PayloadTooLarge, QueueFull, UnknownJob
from cep_automation.flow import fairness, ordering
from cep_automation.flow.per_key import UNKEYED, render_key
from cep_automation.records import broker_state, dead_letters, idempotency, metrics, scheduled_jobs
from cep_automation.runtime import backpressure, timing
from cep_automation.runtime.payload import validate
from cep_automation.settings import get_settings

if TYPE_CHECKING:
    from cep_automation.runtime.actor import CepActor

logger = logging.getLogger("cep_automation.runtime.enqueue")
Message = dramatiq.Message[Any]


@dataclass(frozen=True)
class Enqueued:
    """What a caller learns from an enqueue: the message (the first one, for a duplicate) and whether it was one."""

    message: Message
    duplicate: bool
    run_at: dt.datetime | None = None  # when a job held for later is due
    held: bool = False  # held in PostgreSQL until then (cancellable), not in Redis
    deferred_ms: int = 0  # past the queue's soft limit: accepted, due this much later
    retry_after_s: int | None = None  # … and the caller should slow down for this long

    @property
    def message_id(self) -> str:
        return self.message.message_id


def actor_named(name: str) -> CepActor:
    """The declared actor ``name``; raises :class:`UnknownJob` listing the known ones."""
    from cep_automation.actors import broker

    if name not in broker.actors:
        raise UnknownJob(name, list(broker.actors))
    return broker.get_actor(name)  # type: ignore[return-value]  # every actor is declared with @job


def job_names() -> list[str]:
    """Every declared job, sorted."""
    from cep_automation.actors import broker

    return sorted(broker.actors)


def idempotency_key(actor: CepActor, payload: dict[str, Any], options: dict[str, Any]) -> str | None:
    """The explicit ``idempotency_key`` option, else the actor's template filled from the payload,
    else — for a periodiq tick — ``<actor>@<tick>``; None when the job has no key."""
    if options.get(opt.IDEMPOTENCY_KEY):
        return str(options[opt.IDEMPOTENCY_KEY])
    template = actor.options.get(opt.IDEMPOTENCY_KEY)
    if template:
        return str(template(payload) if callable(template) else template.format(**payload))
    if options.get(opt.SCHEDULED_AT):
        return f"{actor.actor_name}@{options[opt.SCHEDULED_AT]}"
    return None


def enqueue(actor: CepActor | str, kwargs: dict[str, Any] | None = None, *, args: tuple[Any, ...] = (),
            delay: int | dt.timedelta | None = None, run_at: dt.datetime | None = None,
            debounce: float | None = None, debounce_key: str | None = None, message_id: str | None = None,
            released: bool = False, strict: bool = False, **options: Any) -> Enqueued:
    """Validate, check size and backpressure, then hold for later or claim the idempotency key and enqueue.

    Parameters:
      actor: the actor or its job name.
      kwargs, args: the payload.
      delay: milliseconds (or a timedelta) before the job is due.
      run_at: the instant it is due, with a time zone; in the past means now.
      debounce: seconds of quiet per ``debounce_key`` (default: the job's idempotency key, else its name)
        after which the job runs once, with the last trigger's payload.
      message_id: the id to enqueue under (a held job's release keeps the id its caller was given).
      released: the job comes out of the hold (``runtime/scheduling.py``): never held again.
      strict: validate as JSON Schema would (the HTTP ingress).
      options: message options (``idempotency_key=``, ``scheduled_at=``, ...).
    Raises:
      UnknownJob: no job of that name.
      PayloadError: the payload does not match the job's schema; nothing was enqueued.
      PayloadTooLarge: the payload is over ``CEP_MAX_PAYLOAD_BYTES``; nothing was enqueued.
      ScheduleError: a naive ``run_at``, a negative delay, two timings at once.
      QueueFull: the queue is at its hard limit; nothing was enqueued.
    """
    if isinstance(actor, str):
        actor = actor_named(actor)
    job = prepare(actor, kwargs, args=args, delay=delay, run_at=run_at, debounce=debounce, message_id=message_id,
                  strict=strict, **options)
    when, message = job.when, job.message
    if not released and (when.debounce or (when.delay_ms or 0) > get_settings().cep_schedule_hold_after_s * 1000):
        scope = f"{actor.actor_name}|{debounce_key or job.key or '*'}" if when.debounce else None
        return hold(message, when, scope)
    admission = admit(actor)
    delay_ms = job.delay_ms(admission)
    enqueued = _enqueue(actor, message, delay_ms, job.key, job.order)
    if admission is None:
        return enqueued
    if not enqueued.duplicate:
        backpressure.counted(actor.broker, actor.queue_name)
    if admission.defer_ms:
        if not enqueued.duplicate:
            metrics.count_deferred(actor.queue_name)
        return replace(enqueued, deferred_ms=delay_ms or 0, retry_after_s=admission.retry_after_s)
    return enqueued


@dataclass(frozen=True)
class Prepared:
    """A job checked and made into its message, not yet sent: what :func:`enqueue` does before the broker."""

    actor: CepActor
    message: Message
    when: timing.When
    key: str | None  # its idempotency key
    order: str | None  # its ordering key

    def delay_ms(self, admission: backpressure.Admission | None) -> int | None:
        """Its delay, or the queue's deferral past the soft limit when that is longer."""
        if admission is not None and admission.defer_ms > (self.when.delay_ms or 0):
            return admission.defer_ms
        return self.when.delay_ms


def prepare(actor: CepActor, kwargs: dict[str, Any] | None = None, *, args: tuple[Any, ...] = (),
            delay: int | dt.timedelta | None = None, run_at: dt.datetime | None = None,
            debounce: float | None = None, message_id: str | None = None, strict: bool = False,
            **options: Any) -> Prepared:
    """The door's checks (size, payload, timing, priority, keys) and the message; raises as :func:`enqueue`."""
    kwargs = dict(kwargs or {})
    try:
        check_size(actor.actor_name, args, kwargs)  # first: a 10 MB payload is not worth validating
    except PayloadTooLarge:
        metrics.count_rejected(actor.queue_name, "too_large")
        raise
    payload = validate(actor, args, kwargs, strict=strict)
    when = timing.resolve(run_at, delay, debounce)
    if options.get("priority") is not None:
        options["priority"] = timing.priority(options["priority"])
    key = idempotency_key(actor, payload, options)
    if key is not None:
        options[opt.IDEMPOTENCY_KEY] = key
    order = keyed_option(actor, payload, options, "ordering_key", opt.ORDERING_KEY)
    if order is not None:
        options[opt.ORDERING_KEY] = order
    fair = keyed_option(actor, payload, options, "fairness_key", opt.FAIRNESS_KEY)
    if fair is not None:
        if order is not None:
            raise ValueError(f"{actor.actor_name}: a job takes turns by its ordering key or by its fairness key,"
                             " not both (an ordering key already runs its jobs one at a time)")
        options[opt.FAIRNESS_KEY] = fair
    message = actor.message_with_options(args=args, kwargs=kwargs, **options)
    if message_id is not None:
        message = message.copy(message_id=message_id)
    return Prepared(actor, message, when, key, order)


def keyed_option(actor: CepActor, payload: dict[str, Any], options: dict[str, Any], name: str,
                 stored_as: str) -> str | None:
    """A key the message is grouped by (``ordering_key``, ``fairness_key``): given with the message (``name=``), or
    the actor option ``name``'s template filled from the payload (``"lead:{lead_id}"``); None when neither, or
    when a field the template names is missing."""
    given = options.pop(name, None) or options.get(stored_as)
    if given:
        return str(given)
    template = actor.options.get(name)
    if not template:
        return None
    bucket = render_key(template, payload)
    return None if bucket == UNKEYED else bucket


def _enqueue(actor: CepActor, message: Message, delay: int | None, key: str | None,
             order: str | None = None) -> Enqueued:
    """Claim ``key`` (if any), enqueue ``message`` and put it in its ordering key's line (if any): atomically on
    Redis, with a give-back elsewhere. A job with a fairness key (and no delay) waits in its key's list instead."""
    fair = message.options.get(opt.FAIRNESS_KEY)
    if fair and delay is None and broker_state.is_redis(actor.broker):
        holder = idempotency.claim_enqueue(key, message.message_id) if key else None
        if holder is not None:
            logger.info("Not enqueuing %s again: key %r is held by message %s", actor.actor_name, key, holder)
            return Enqueued(message.copy(message_id=holder), duplicate=True)
        try:
            return Enqueued(fairness.enqueue(actor.broker, message, fair), duplicate=False)
        except BaseException:
            if key:
                idempotency.release_enqueue(key, message.message_id)
            raise
    if broker_state.is_redis(actor.broker):  # the claim, the enqueue, the line and the "queued" record: one script
        enqueued, holder = broker_state.enqueue_once(
            actor.broker, message, delay, idempotency.sent_key(key) if key else None, idempotency.WINDOW_S,
            ordering.line_key(order) if order else None, write_state=not message.options.get("retries"))
        if holder is not None:
            logger.info("Not enqueuing %s again: key %r is held by message %s", actor.actor_name, key, holder)
            return Enqueued(message.copy(message_id=holder), duplicate=True)
        return Enqueued(enqueued, duplicate=False)
    holder = idempotency.claim_enqueue(key, message.message_id) if key else None
    if holder is not None:
        logger.info("Not enqueuing %s again: key %r is held by message %s", actor.actor_name, key, holder)
        return Enqueued(message.copy(message_id=holder), duplicate=True)
    if order:
        ordering.join_line(order, message.message_id)
    try:
        return Enqueued(actor.broker.enqueue(message, delay=delay), duplicate=False)
    except BaseException:
        if key:
            idempotency.release_enqueue(key, message.message_id)
        if order:
            ordering.leave_line(order, message.message_id)
        raise


def enqueue_many(jobs: list[Prepared]) -> list[Enqueued | Exception]:
    """Enqueue prepared jobs now (never held: the releaser's path), each as :func:`enqueue` would, the Redis
    broker's in one pipeline; each job's outcome in order, or the error that stopped it (``QueueFull`` once its
    queue reaches its hard limit, mid-batch too, or what Redis answered for its script)."""
    outcomes: list[Enqueued | Exception | None] = []
    piped: list[tuple[int, Prepared, int | None]] = []
    for index, job in enumerate(jobs):
        actor = job.actor
        try:
            admission = admit(actor)
        except QueueFull as exc:
            outcomes.append(exc)
            continue
        if admission is not None:
            backpressure.counted(actor.broker, actor.queue_name)  # counted now: the rest of the batch sees it
        delay_ms = job.delay_ms(admission)
        outcomes.append(None)
        if broker_state.is_redis(actor.broker) and not job.message.options.get(opt.FAIRNESS_KEY):
            piped.append((index, job, delay_ms))
            continue
        try:
            outcomes[index] = _enqueue(actor, job.message, delay_ms, job.key, job.order)
        except Exception as exc:  # this job's outcome; the caller decides
            outcomes[index] = exc
    for broker in {id(job.actor.broker): job.actor.broker for _, job, _ in piped}.values():
        mine = [each for each in piped if each[1].actor.broker is broker]
        replies = broker_state.enqueue_many(broker, [(
            job.message, delay, idempotency.sent_key(job.key) if job.key else None,
            ordering.line_key(job.order) if job.order else None) for _, job, delay in mine], idempotency.WINDOW_S)
        for (index, job, _), reply in zip(mine, replies, strict=True):
            outcomes[index] = reply if isinstance(reply, Exception) else _sent(job, *reply)
    assert all(each is not None for each in outcomes)
    return outcomes  # type: ignore[return-value]  # every slot was filled above


def _sent(job: Prepared, message: Message, holder: str | None) -> Enqueued:
    if holder is None:
        return Enqueued(message, duplicate=False)
    logger.info("Not enqueuing %s again: key %r is held by message %s", job.actor.actor_name, job.key, holder)
    return Enqueued(message.copy(message_id=holder), duplicate=True)


def admit(actor: CepActor) -> backpressure.Admission | None:
    """Backpressure's answer for ``actor``'s queue; a refusal is counted (``enqueue_rejected_total``)."""
    try:
        return backpressure.admit(actor.broker, actor.queue_name)
    except QueueFull:
        metrics.count_rejected(actor.queue_name, "queue_full")
        raise


def check_size(job: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a payload whose JSON is over ``CEP_MAX_PAYLOAD_BYTES`` (ASCII-escaped, so characters are bytes)."""
    if not args and not kwargs:
        return
    limit = get_settings().cep_max_payload_bytes
    size = len(json.dumps([args, kwargs], separators=(",", ":"), default=str))
    if size > limit:
        raise PayloadTooLarge(job, size, limit)


def hold(message: Message, when: timing.When, debounce_key: str | None) -> Enqueued:
    """Keep the job in PostgreSQL until it is due (``schedules.release`` enqueues it then)."""
    assert when.run_at is not None
    with connection() as conn:
        message_id, triggers = scheduled_jobs.hold(
            conn, message_id=message.message_id, actor=message.actor_name, queue=message.queue_name,
            payload={"args": list(message.args), "kwargs": message.kwargs}, options=message.options,
            run_at=when.run_at, debounce_key=debounce_key)
    logger.info("Holding %s %s until %s%s", message.actor_name, message_id, when.run_at.isoformat(),
                f" (debounce key {debounce_key!r}, trigger {triggers})" if debounce_key else "")
    return Enqueued(message.copy(message_id=message_id), duplicate=triggers > 1, run_at=when.run_at, held=True)


def cancel(message_id: str) -> None:
    """Cancel a job held for later; raises :class:`ScheduledJobNotFound` saying why when it cannot be."""
    with connection() as conn:
        scheduled_jobs.cancel(conn, message_id)
    logger.info("Cancelled scheduled job %s", message_id)


def retry_dead_letter(conn: psycopg.Connection[DictRow], letter_id: int, *, by: str = "operator",
                      options: dict[str, Any] | None = None) -> str:
    """Enqueue a dead letter's payload again under the same idempotency key; returns the new message id.

    The dead message still holds its key's enqueue claim: it is handed over to the retry (released
    only if the dead message is still its holder), so the retry is not taken for a duplicate. ``by`` (operator
    or auto) is noted with the retry; ``options`` are added to the retry's message options.
    """
    letter = dead_letters.retryable(conn, letter_id)
    if key := letter["options"].get(opt.IDEMPOTENCY_KEY):
        idempotency.release_enqueue(key, letter["message_id"])
    options = {**letter["options"], **(options or {})}
    enqueued = enqueue(letter["actor"], letter["kwargs"], args=letter["args"], **options)
    dead_letters.mark_retried(conn, letter_id, enqueued.message_id, by)
    return enqueued.message_id
