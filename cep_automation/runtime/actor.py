"""The actor class and decorator every job uses: options come from the queue policy table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

import dramatiq
from periodiq import cron

from cep_automation.queues import actor_options, policy
from cep_automation.runtime.enqueue import enqueue


class CepActor(dramatiq.Actor[Any, Any]):
    """A Dramatiq actor whose ``send`` goes through :func:`cep_automation.runtime.enqueue.enqueue`.

    So a Python ``send``, periodiq's tick and every other front-end validate the payload once and
    are enqueued once per idempotency key: a second send with the same key within the window
    returns the first message, unsent (two schedulers never enqueue the same tick twice).
    """

    def send_with_options(self, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                          delay: dt.timedelta | int | None = None, **options: Any) -> dramatiq.Message[Any]:
        if isinstance(delay, dt.timedelta):  # as Dramatiq's own send_with_options accepts it
            delay = int(delay.total_seconds() * 1000)
        return enqueue(self, kwargs, args=args, delay=delay, **options).message


def job(name: str, **extra: Any) -> Callable[[Callable[..., Any]], CepActor]:
    """Declare the actor ``name`` with the options of its row in :data:`cep_automation.queues.POLICIES`."""
    options = actor_options(name)
    if policy(name).cron:
        options["periodic"] = cron(policy(name).cron)
    options.update(extra)
    # With actor_class=CepActor the decorator builds a CepActor; its type only says Actor[P, R].
    return cast("Callable[[Callable[..., Any]], CepActor]", dramatiq.actor(actor_class=CepActor, **options))
