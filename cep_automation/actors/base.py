"""The actor class and decorator every job uses: options come from the queue policy table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from periodiq import cron

from cep_automation.middleware.schedule_guard import claim_tick
from cep_automation.queues import actor_options, policy

logger = logging.getLogger("cep_automation.actors.CepActor")


class CepActor(dramatiq.Actor):  # type: ignore[type-arg]
    """A Dramatiq actor that sends each scheduled tick once, however many schedulers run.

    periodiq sends ticks with ``send_with_options(scheduled_at=...)``; the first sender claims
    the tick in Redis and later senders get the message that holds it back, unsent.
    """

    def send_with_options(self, *, args: tuple = (), kwargs: dict[str, Any] | None = None,
                          delay: Any = None, **options: Any) -> dramatiq.Message:  # type: ignore[type-arg]
        scheduled_at = options.get("scheduled_at")
        if scheduled_at is None:
            return super().send_with_options(args=args, kwargs=kwargs, delay=delay, **options)
        message = self.message_with_options(args=args, kwargs=kwargs, **options)
        holder = claim_tick(self.actor_name, scheduled_at, "sent", message.message_id)
        if holder is not None:
            logger.info("Tick %s of %s already sent as message %s", scheduled_at, self.actor_name, holder)
            return message.copy(message_id=holder)
        return self.broker.enqueue(message, delay=delay)


def job(name: str, **extra: Any) -> Callable[[Callable[..., Any]], CepActor]:
    """Declare the actor ``name`` with the options of its row in :data:`cep_automation.queues.POLICIES`."""
    options = actor_options(name)
    if policy(name).cron:
        options["periodic"] = cron(policy(name).cron)
    options.update(extra)
    return dramatiq.actor(actor_class=CepActor, **options)  # type: ignore[no-any-return]
