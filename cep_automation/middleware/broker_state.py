"""Requeues the messages of dead workers within a bounded time, from every live worker process.

A worker killed with ``kill -9`` (or by the OOM killer, or with its host) leaves the messages it had
fetched in its unacked sets. Dramatiq gives them back only in a maintenance pass it runs on a random
0.1% of broker commands, so on a quiet queue they could wait for many minutes. Each worker process here
runs that maintenance every :data:`SWEEP_EVERY_S` seconds instead, so a dead worker's messages are
back in their queue at most ``CEP_HEARTBEAT_TIMEOUT_MS`` + :data:`SWEEP_EVERY_S` after its last heartbeat,
marked so that ``DeliveryLimit`` counts their next deliveries. Our brokers never run Dramatiq's maintenance
at random (it would requeue unmarked), so the sweep also runs it on every queue now and then, for what
else it does (dropping rejected messages past their time to live).
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq import Middleware

from cep_automation.records import broker_state

logger = logging.getLogger("cep_automation.middleware.BrokerMaintenance")
SWEEP_EVERY_S = 10.0
TIDY_EVERY_SWEEPS = 30  # Dramatiq's maintenance on every queue (expired rejected messages), about every 5 min


class BrokerMaintenance(Middleware):
    """Runs :func:`cep_automation.records.broker_state.requeue_dead_workers` on a timer (Redis and RabbitMQ).

    Parameters:
      every_s: seconds between two sweeps.
    """

    def __init__(self, *, every_s: float = SWEEP_EVERY_S) -> None:
        self.every_s = every_s
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not (broker_state.is_redis(broker) or broker_state.is_rabbitmq(broker)):  # the stub broker: no workers
            return  # on RabbitMQ the sweep only notes the worker alive: RabbitMQ redelivers on its own
        self._stop.clear()
        threading.Thread(target=self._loop, args=(broker,), name="cep-requeue-sweep", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _loop(self, broker: dramatiq.Broker) -> None:
        sweeps = 0
        while not self._stop.wait(self.every_s):
            self.sweep(broker)
            sweeps += 1
            if sweeps % TIDY_EVERY_SWEEPS == 0:
                try:
                    broker_state.run_maintenance(broker)
                except Exception as exc:
                    logger.debug("Queue maintenance skipped: %s", exc)

    def sweep(self, broker: dramatiq.Broker) -> None:
        """One pass; never raises (Redis may be down: the next pass tries again)."""
        try:
            held = broker_state.requeue_dead_workers(broker)
        except Exception as exc:
            logger.debug("Requeue sweep skipped: %s", exc)
            return
        for worker_id, count in held.items():
            if count:
                logger.warning("Worker %s stopped sending heartbeats: %d message(s) it held are back in their"
                               " queues", worker_id, count)
