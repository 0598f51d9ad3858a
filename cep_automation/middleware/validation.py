"""Checks each message's payload once more when a worker processes it.

The producer already validated it (:func:`cep_automation.runtime.enqueue.enqueue`); a message
that is invalid here was written by an older producer or edited in Redis. It is failed at once —
no retries — and so goes to the dead letters with the errors.
"""

from __future__ import annotations

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation import options as opt
from cep_automation.errors import PayloadError
from cep_automation.runtime.payload import validate


class PayloadValidation(Middleware):
    """Checks payloads against the ``schema`` actor option (a pydantic model) at processing."""

    @property
    def actor_options(self) -> set[str]:
        return {"schema"}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        try:
            validate(broker.get_actor(message.actor_name), message.args, message.kwargs)
        except PayloadError as exc:
            message.options[opt.ERROR] = {"type": "PayloadError", "message": str(exc), "errors": exc.errors}
            message.fail()
            raise SkipMessage(str(exc)) from None
