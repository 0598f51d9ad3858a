"""Runs each scheduled tick once, however many schedulers sent it.

periodiq has no lock, so two scheduler processes send the same tick twice. Our schedulers
claim the tick before sending (:mod:`cep_automation.scheduler`); this middleware is the
second line for plain ``periodiq`` processes: the first message of a tick to be processed
claims it and later copies are skipped.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation.redis_client import get_redis, key

TICK_TTL_S = 2 * 24 * 3600
logger = logging.getLogger("cep_automation.middleware.ScheduleGuard")


def tick_key(actor_name: str, scheduled_at: str, stage: str) -> str:
    """Redis key recording that a tick was ``sent`` or ``run``."""
    return key("tick", stage, actor_name, scheduled_at)


def claim_tick(actor_name: str, scheduled_at: str, stage: str, message_id: str) -> str | None:
    """Claim a tick; return None if we got it, else the message id that already holds it."""
    client = get_redis()
    name = tick_key(actor_name, scheduled_at, stage)
    if client.set(name, message_id, nx=True, ex=TICK_TTL_S):
        return None
    holder = client.get(name)
    return holder.decode() if holder else ""


class ScheduleGuard(Middleware):
    """Skips a scheduled message whose tick another message of the same actor already ran."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        scheduled_at = message.options.get("scheduled_at")
        if not scheduled_at or message.options.get("retries"):
            return
        holder = claim_tick(message.actor_name, scheduled_at, "run", message.message_id)
        if holder is not None and holder != message.message_id:
            logger.info("Skipping %s tick %s: already run by message %s", message.actor_name, scheduled_at, holder)
            raise SkipMessage()
