"""Validates each job's payload against its actor's pydantic schema, at enqueue and at processing.

At enqueue the caller gets a :class:`PayloadError` naming each bad field and nothing is
queued. A message that is invalid when processed (sent by an older producer, or edited in
Redis) is failed at once — no retries — and so goes to the dead letters with the errors.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage
from pydantic import BaseModel, ValidationError

from cep_automation.errors import PayloadError

# Where the processing-side validation error is kept, for the dead letters and the audit log.
ERROR_OPTION = "cep_error"


@lru_cache(maxsize=None)
def _signature(fn: Any) -> inspect.Signature:
    return inspect.signature(fn)


def payload_of(actor: dramatiq.Actor, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
    """The payload as keyword arguments, whether sent positionally or by name."""
    try:
        return dict(_signature(actor.fn).bind(*args, **kwargs).arguments)
    except TypeError as exc:
        raise PayloadError(actor.actor_name, [str(exc)]) from None


def validate(actor: dramatiq.Actor, args: tuple, kwargs: dict[str, Any]) -> None:  # type: ignore[type-arg]
    """Raise :class:`PayloadError` listing every problem of this payload."""
    payload = payload_of(actor, args, kwargs)
    schema: type[BaseModel] | None = actor.options.get("schema")
    if schema is None:
        return
    try:
        schema.model_validate(payload)
    except ValidationError as exc:
        errors = [f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()]
        raise PayloadError(actor.actor_name, errors) from None


class PayloadValidation(Middleware):
    """Checks payloads against the ``schema`` actor option (a pydantic model)."""

    @property
    def actor_options(self) -> set[str]:
        return {"schema"}

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        if message.options.get("retries"):
            return  # a retry re-enqueues a payload that was valid the first time
        actor = broker.get_actor(message.actor_name)
        validate(actor, message.args, message.kwargs)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        try:
            validate(broker.get_actor(message.actor_name), message.args, message.kwargs)
        except PayloadError as exc:
            message.options[ERROR_OPTION] = {"type": "PayloadError", "message": str(exc), "errors": exc.errors}
            message.fail()
            raise SkipMessage(str(exc)) from None
