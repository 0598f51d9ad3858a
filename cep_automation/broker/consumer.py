"""A Dramatiq consumer thread that keeps what it holds through a broker outage.

Dramatiq 2.2's ``ConsumerThread`` has two faults that lose work on a Redis restart, both seen in our chaos
runs: on a connection error it drops its in-memory delay queue (retries waiting for their ETA), whose
messages stay in this live worker's unacked set, so nobody ever runs them; and an error raised while it
requeues on an unexpected failure (``LOADING`` while Redis reads its append-only file) kills the thread, so
the worker stops consuming that queue for good.

:class:`SteadyConsumerThread` keeps the delay queue (its messages are still this worker's in Redis and are
enqueued when due, as if nothing happened), restarts its consumer without requeueing, and never lets an
error end the thread while the worker runs. :func:`install` puts it in place of Dramatiq's class; the
broker factory calls it, so both ``cep-automation worker`` and the plain ``dramatiq`` CLI get it.
"""

from __future__ import annotations

import logging
import time

import dramatiq.worker
from dramatiq.errors import BrokerConnectionError

RESTART_DELAY_S = 1.0
logger = logging.getLogger("cep_automation.broker.SteadyConsumerThread")


class SteadyConsumerThread(dramatiq.worker.ConsumerThread):
    """Dramatiq's consumer thread with the two outage faults fixed (see the module docstring)."""

    def run(self) -> None:
        self.logger.debug("Running consumer thread...")
        self.running = True
        self.broker.emit_after("consumer_thread_boot", self)
        while self.running:
            if self.paused:
                self.paused_event.set()
                time.sleep(self.worker_timeout / 1000)
                continue
            try:
                self._consume()
            except BrokerConnectionError as exc:
                logger.warning("Consumer of %s lost the broker (%s); %d delayed message(s) kept",
                               self.queue_name, exc, self.delay_queue.qsize())
            except Exception:
                logger.exception("Consumer of %s failed; restarting it", self.queue_name)
            if self.running:
                self._drop_consumer()
                time.sleep(RESTART_DELAY_S)
        self.broker.emit_before("consumer_thread_shutdown", self)

    def _consume(self) -> None:
        self.consumer = self.broker.consume(queue_name=self.queue_name, prefetch=self.prefetch,
                                            timeout=self.worker_timeout)
        for message in self.consumer:
            if message is not None:
                self.handle_message(message)
            elif self.paused:
                break
            self.handle_delayed_messages()
            if not self.running:
                break

    def _drop_consumer(self) -> None:
        """Close the broken consumer's connection without requeueing: what it held stays this worker's."""
        try:
            if self.consumer is not None:
                self.consumer.close()
        except Exception as exc:  # a dead connection may refuse to close; the next consume opens a new one
            logger.debug("Closing the consumer of %s failed: %s", self.queue_name, exc)
        # self.consumer stays: Worker.stop requeues through it (Redis's requeue needs no open connection).

    def close(self) -> None:
        """At shutdown: give the delayed messages back to their queue; a failure leaves them to the sweep."""
        try:
            super().close()
        except Exception as exc:
            logger.warning("Could not requeue the delayed messages of %s at shutdown (%s); another worker's"
                           " requeue sweep will, once this worker's heartbeat is old", self.queue_name, exc)


def install() -> None:
    """Make every Dramatiq worker in this process use :class:`SteadyConsumerThread` (idempotent)."""
    dramatiq.worker.ConsumerThread = SteadyConsumerThread  # type: ignore[misc]  # a subclass, same signature


__all__ = ["SteadyConsumerThread", "install"]
