"""The one way a job is enqueued: Python ``send``, the HTTP ingress, the CLI, the Meta webhook,
dead-letter retries and the scheduler all come through :func:`enqueue`.

It validates the payload once, works out the idempotency key, claims it atomically in Redis
(``SET NX``: of two racing identical requests exactly one wins, the other gets the winner's
message id and ``duplicate=True``) and enqueues. On the Redis broker the claim and the enqueue are one
script (both happen or neither); on other brokers the claim is given back if the enqueue fails.
The worker validates once more when it processes the message (the ``PayloadValidation``
middleware), for messages written by an older producer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
import psycopg
from psycopg.rows import DictRow

from cep_automation import options as opt
from cep_automation.errors import UnknownJob
from cep_automation.records import broker_state, dead_letters, idempotency
from cep_automation.runtime.payload import validate

if TYPE_CHECKING:
    from cep_automation.runtime.actor import CepActor

logger = logging.getLogger("cep_automation.runtime.enqueue")
Message = dramatiq.Message[Any]


@dataclass(frozen=True)
class Enqueued:
    """What a caller learns from an enqueue: the message (the first one, for a duplicate) and whether it was one."""

    message: Message
    duplicate: bool

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
            delay: int | None = None, strict: bool = False, **options: Any) -> Enqueued:
    """Validate, claim the idempotency key, enqueue.

    Parameters:
      actor: the actor or its job name.
      kwargs, args: the payload.
      delay: milliseconds before the message becomes due.
      strict: validate as JSON Schema would (the HTTP ingress).
      options: message options (``idempotency_key=``, ``scheduled_at=``, ...).
    Raises:
      UnknownJob: no job of that name.
      PayloadError: the payload does not match the job's schema; nothing was enqueued.
    """
    if isinstance(actor, str):
        actor = actor_named(actor)
    kwargs = dict(kwargs or {})
    payload = validate(actor, args, kwargs, strict=strict)
    key = idempotency_key(actor, payload, options)
    if key is not None:
        options[opt.IDEMPOTENCY_KEY] = key
    message = actor.message_with_options(args=args, kwargs=kwargs, **options)
    if key is None:
        return Enqueued(actor.broker.enqueue(message, delay=delay), duplicate=False)
    if broker_state.is_redis(actor.broker):  # the claim and the enqueue in one script
        enqueued, holder = broker_state.enqueue_once(actor.broker, message, delay, idempotency.sent_key(key),
                                                     idempotency.WINDOW_S)
        if holder is not None:
            logger.info("Not enqueuing %s again: key %r is held by message %s", actor.actor_name, key, holder)
            return Enqueued(message.copy(message_id=holder), duplicate=True)
        return Enqueued(enqueued, duplicate=False)
    holder = idempotency.claim_enqueue(key, message.message_id)
    if holder is not None:
        logger.info("Not enqueuing %s again: key %r is held by message %s", actor.actor_name, key, holder)
        return Enqueued(message.copy(message_id=holder), duplicate=True)
    try:
        return Enqueued(actor.broker.enqueue(message, delay=delay), duplicate=False)
    except BaseException:
        idempotency.release_enqueue(key, message.message_id)
        raise


def retry_dead_letter(conn: psycopg.Connection[DictRow], letter_id: int) -> str:
    """Enqueue a dead letter's payload again under the same idempotency key; returns the new message id.

    The dead message still holds its key's enqueue claim: it is handed over to the retry (released
    only if the dead message is still its holder), so the retry is not taken for a duplicate.
    """
    letter = dead_letters.retryable(conn, letter_id)
    if key := letter["options"].get(opt.IDEMPOTENCY_KEY):
        idempotency.release_enqueue(key, letter["message_id"])
    enqueued = enqueue(letter["actor"], letter["kwargs"], args=letter["args"], **letter["options"])
    dead_letters.mark_retried(conn, letter_id, enqueued.message_id)
    return enqueued.message_id
