"""Providers' confirmations of our sends, by the reference we gave them: did that message go?

A send without an idempotency key (WhatsApp) carries our reference (WhatsApp's
``biz_opaque_callback_data``), and the provider's status webhook brings it back with the message id.
When an attempt died between the send and the ledger insert, the next attempt looks here before it sends
again (:meth:`cep_automation.records.effects.Ledger.run_confirmable`). Kept in Redis for 7 days:
``{namespace}:confirm:<provider>:<reference>`` → ``{"provider_id", "status", "at"}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cep_automation.db.redis_client import get_redis, key

KEEP_S = 7 * 24 * 3600


def confirmation_key(provider: str, reference: str) -> str:
    return key("confirm", provider, reference)


def record(provider: str, reference: str, provider_id: str, status: str) -> None:
    """Note that the provider took the message ``reference`` as ``provider_id`` (statuses may repeat)."""
    entry = json.dumps({"provider_id": provider_id, "status": status, "at": round(time.time(), 3)})
    get_redis().set(confirmation_key(provider, reference), entry, ex=KEEP_S)


def confirmed(provider: str, reference: str) -> dict[str, Any] | None:
    """What the provider confirmed for ``reference``, or None if it has said nothing (yet)."""
    raw = get_redis().get(confirmation_key(provider, reference))
    return json.loads(raw) if raw else None
