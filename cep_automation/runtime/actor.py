"""The actor class and decorator every job uses: options come from the queue policy table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from periodiq import cron

from cep_automation.records import idempotency
from cep_automation.middleware.validation import payload_of, validate
from cep_automation.queues import actor_options, policy

logger = logging.getLogger("cep_automation.actors.CepActor")


class CepActor(dramatiq.Actor):  # type: ignore[type-arg]
    """A Dramatiq actor whose messages carry an idempotency key, enqueued once per key.

    The key is the ``idempotency_key`` message option, else the actor's ``idempotency_key``
    template filled from the payload, else — for a periodiq tick — ``<actor>@<tick>``. A second
    send with the same key within the window returns the first message, unsent; so two
    schedulers never enqueue the same tick twice.
    """

    def idempotency_key(self, kwargs: dict[str, Any], options: dict[str, Any], args: tuple = ()) -> str | None:
        if options.get("idempotency_key"):
            return str(options["idempotency_key"])
        template = self.options.get("idempotency_key")
        if template:
            # Validate first, so a missing field is a PayloadError naming it, not a KeyError from the template.
            validate(self, args, kwargs)
            payload = payload_of(self, args, kwargs)
            return template(payload) if callable(template) else template.format(**payload)
        if options.get("scheduled_at"):
            return f"{self.actor_name}@{options['scheduled_at']}"
        return None

    def send_with_options(self, *, args: tuple = (), kwargs: dict[str, Any] | None = None,
                          delay: Any = None, **options: Any) -> dramatiq.Message:  # type: ignore[type-arg]
        idem_key = self.idempotency_key(kwargs or {}, options, args)
        if idem_key is None:
            return super().send_with_options(args=args, kwargs=kwargs, delay=delay, **options)
        options["idempotency_key"] = idem_key
        message = self.message_with_options(args=args, kwargs=kwargs, **options)
        holder = idempotency.claim_enqueue(idem_key, message.message_id)
        if holder is not None:
            logger.info("Not enqueuing %s again: key %r is held by message %s", self.actor_name, idem_key, holder)
            return message.copy(message_id=holder)
        try:
            return self.broker.enqueue(message, delay=delay)
        except BaseException:
            idempotency.release_enqueue(idem_key, message.message_id)
            raise


def job(name: str, **extra: Any) -> Callable[[Callable[..., Any]], CepActor]:
    """Declare the actor ``name`` with the options of its row in :data:`cep_automation.queues.POLICIES`."""
    options = actor_options(name)
    if policy(name).cron:
        options["periodic"] = cron(policy(name).cron)
    options.update(extra)
    return dramatiq.actor(actor_class=CepActor, **options)  # type: ignore[no-any-return]
