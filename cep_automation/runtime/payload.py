"""A job's payload checked against its actor's pydantic ``schema``: one function for producers and workers.

Producers check in lax mode (Python callers and the CLI pass strings and numbers loosely), the
HTTP ingress in strict JSON mode (what its OpenAPI document promises); the worker checks again in
lax mode when it processes the message.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from typing import Any

import dramatiq
from pydantic import BaseModel, ValidationError

from cep_automation.errors import PayloadError

Actor = dramatiq.Actor[Any, Any]


def field_errors(exc: ValidationError) -> list[str]:
    """Each problem as ``field: message``, the way every front-end shows it."""
    return [f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()]


@cache
def _signature(fn: Any) -> inspect.Signature:
    return inspect.signature(fn)


def payload_of(actor: Actor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The payload as keyword arguments, whether sent positionally or by name."""
    try:
        return dict(_signature(actor.fn).bind(*args, **kwargs).arguments)
    except TypeError as exc:
        raise PayloadError(actor.actor_name, [f"the job does not take this payload: {exc}"]) from None


def validate(actor: Actor, args: tuple[Any, ...], kwargs: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """The payload by name; raises :class:`PayloadError` listing every problem.

    ``strict`` applies JSON Schema's rules (no ``false`` for a number, no ``0`` for a date), as the
    HTTP ingress documents.
    """
    payload = payload_of(actor, args, kwargs)
    schema: type[BaseModel] | None = actor.options.get("schema")
    if schema is None:
        return payload
    try:
        if strict:
            schema.model_validate_json(json.dumps(payload, default=str), strict=True)
        else:
            schema.model_validate(payload)
    except ValidationError as exc:
        raise PayloadError(actor.actor_name, field_errors(exc)) from None
    return payload
