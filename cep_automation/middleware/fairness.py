"""Feeds the queues whose jobs carry fairness keys, from every worker process (:mod:`cep_automation.flow.fairness`).

Every :data:`FEED_EVERY_S` the feeder tops each fair queue this worker consumes up to :data:`READY_PER_THREAD`
jobs per worker thread, taking one job per key in turn. Feeders of several processes and hosts share the work
(each move is one Lua script). Redis broker only.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from dramatiq import Middleware

from cep_automation.flow import fairness
from cep_automation.records import broker_state

logger = logging.getLogger("cep_automation.middleware.FairFeeder")
FEED_EVERY_S = 0.05
QUEUES_EVERY_S = 1.0  # how often the feeder reads which queues are fair
READY_PER_THREAD = 2  # as Dramatiq's own prefetch: enough that no thread waits for the feeder


class FairFeeder(Middleware):
    """Moves fair jobs to their queues, round-robin between keys, while the worker runs."""

    def __init__(self, *, every_s: float = FEED_EVERY_S) -> None:
        self.every_s = every_s
        self._stop = threading.Event()

    @property
    def actor_options(self) -> set[str]:
        return {"fairness_key"}

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not broker_state.is_redis(broker):
            return
        self._stop.clear()
        consumed = worker.consumer_whitelist
        ready = max(1, READY_PER_THREAD * worker.worker_threads)
        threading.Thread(target=self._loop, args=(broker, consumed, ready), name="cep-fair-feeder",
                         daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _loop(self, broker: dramatiq.Broker, consumed: set[str] | None, ready: int) -> None:
        queues: set[str] = set()
        read_at = 0.0  # the set of fair queues changes rarely: read it once every QUEUES_EVERY_S
        while True:
            try:
                if time.monotonic() >= read_at:
                    read_at = time.monotonic() + QUEUES_EVERY_S
                    queues = {q for q in fairness.fair_queues() if consumed is None or q in consumed}
                for queue in queues:
                    fairness.feed(broker, queue, ready=ready)
            except Exception as exc:  # Redis away: the next pass tries again
                logger.debug("Fair feeding skipped: %s", exc)
            # No fair queue: nothing to do until the set is read again (waking every FEED_EVERY_S for nothing cost
            # a busy worker 20 wake-ups a second, each taking the GIL from its jobs).
            pause = self.every_s if queues else max(0.0, read_at - time.monotonic())
            if self._stop.wait(pause):
                return
