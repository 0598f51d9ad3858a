"""Runs jobs that share an ordering key one at a time, in enqueue order (:mod:`cep_automation.flow.ordering`).

A message the enqueue put in its line at once (no delay, on Redis: first in line, or parked there until its turn)
reaches its queue only as the head and carries ``cep_in_turn``: it runs without a look at the line. Any other
(a delayed one, one sent through RabbitMQ) takes its turn when fetched: a message fetched out of its turn is
parked and acked (``SkipMessage``, with the option ``cep_parked``: the
audit, job state and metrics do not count it as skipped); when the job at the head of its line ends — completed,
or failed for good — the next one is put back on its queue. A head that will be retried stays at the head. Place
it after ``Idempotency`` and the middlewares that skip a message for good (``StaleTicks``, ``DeliveryLimit``): a
message they skip leaves its line, so it cannot hold the others back.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from cep_automation import options as opt
from cep_automation.broker import acks
from cep_automation.flow import ordering


class Ordering(Middleware):
    """One job per ordering key at a time, in the order they were enqueued, across processes and hosts."""

    @property
    def actor_options(self) -> set[str]:
        return {"ordering_key"}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        order = message.options.get(opt.ORDERING_KEY)
        if not order or message.options.get(opt.IN_TURN):  # sent as the head, or parked at enqueue until it was
            return
        if not ordering.take_turn(order, message, message.queue_name):
            message.options[opt.PARKED] = order
            raise SkipMessage(f"waiting for its turn behind earlier jobs of {order}")

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: Any = None) -> None:
        if exception is None or message.failed:  # done, or dead-lettered: the next one's turn
            self._release(broker, message)
        # else a retry is on its way: it keeps the head of the line

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if opt.PARKED not in message.options:  # skipped for good (duplicate, stale, poison): off the line
            self._release(broker, message)

    @staticmethod
    def _release(broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Off the line and the next one back on its queue: with the message's ack where the broker batches
        them (one round trip fewer), else now."""
        order = message.options.get(opt.ORDERING_KEY)
        if not order:
            return
        namespace = getattr(broker, "namespace", "")
        if not acks.after_ack(broker, message, ordering.release_op(order, message.message_id, namespace)):
            ordering.release(order, message.message_id, namespace)
