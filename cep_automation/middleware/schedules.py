"""Skips a scheduled tick whose first delivery comes too late, and only that: never a retry.

periodiq's own middleware skips *any* delivery of a scheduled job processed more than ``skip_delay``
seconds after its tick — retries included — so a ``campaign.sync`` retried after a long ``Retry-After``,
or a ``backup.daily`` retried after waiting for the backup lock, vanished without a dead letter. Here a
stale tick is skipped only on its first attempt (the next tick does the work; a backlog of ticks after an
outage must not run all at once), a retry or an operator's retry from the dead letters always runs, and a
skip is visible: a warning, an audit row ``skipped`` that says why, and ``job_stale_ticks_total``.
"""

from __future__ import annotations

import logging

import dramatiq
import pendulum
from dramatiq.middleware import SkipMessage
from periodiq import PeriodiqMiddleware

from cep_automation import options as opt

logger = logging.getLogger("cep_automation.middleware.StaleTicks")
SKIP_DELAY_S = 300


def tick_time(tick: str) -> float:
    """A tick (periodiq writes an ISO 8601 instant) as a Unix time."""
    parsed = pendulum.parse(tick)
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError(f"scheduled_at {tick!r} is not an instant")
    return parsed.timestamp()


class StaleTicks(PeriodiqMiddleware):  # type: ignore[misc]  # periodiq is untyped
    """periodiq's middleware (it carries the ``periodic`` actor option) with the stale check above.

    Parameters:
      skip_delay: seconds after its tick past which a tick's first delivery is skipped.
    """

    def __init__(self, *, skip_delay: int = SKIP_DELAY_S) -> None:
        super().__init__(skip_delay=skip_delay)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        actor = broker.actors.get(message.actor_name)
        tick = message.options.get(opt.SCHEDULED_AT)
        if actor is None or "periodic" not in actor.options or not tick:
            return  # not scheduled, or sent by hand
        if message.options.get(opt.RETRIES) or message.options.get(opt.RETRY_OF):
            return  # a retry runs whenever it comes: its tick was taken already
        late_s = pendulum.now("UTC").timestamp() - tick_time(tick)
        if late_s <= self.skip_delay:
            return
        message.options[opt.STALE_TICK] = {"tick": tick, "late_s": round(late_s)}
        logger.warning("Skipping %s (%s): its tick %s came %d s late, over %d s; the next tick does the work",
                       message.actor_name, message.message_id, tick, late_s, self.skip_delay)
        raise SkipMessage(f"stale tick {tick}")
