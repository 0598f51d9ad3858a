"""How many of a job's step calls go to step threads now: all of them, unless the process is saturated.

Running a job's provider calls side by side makes a lead take about as long as its slowest call, not the sum
of them. That buys time only while calls wait on the network. When jobs already keep this process's CPU busy
(one thread runs Python at a time) and more wait for a thread, the waits of one job are filled by the work of
the others, and more threads only add switching: against instant fakes, handing five calls per lead to step
threads cost 2.9 ms of CPU per lead (16.4 against 13.5 ms) and gained nothing.

So the process keeps a limit on the calls in step threads, checked every tenth of a second, as TCP adjusts
its window: halved while the process used at least :data:`BUSY` of a core *and* fetched messages wait for a
worker thread (a backlog: throughput is what counts then, not one job's latency), doubled otherwise, and back
to the whole pool after a quiet spell (under :data:`QUIET`). A busy CPU without a backlog is no reason to make
the next lead slower. Nothing waits for the limit: a call over it runs in the job's own thread. A job that
fans out while no other job does gets every thread it asks for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BUSY = 0.85  # share of one core: from here on the process counts as busy
QUIET = 0.5  # below this share the limit goes straight back to the whole pool
WINDOW_S = 0.1


class FanOut:
    """The process's limit on step calls in step threads; :meth:`grant` before handing off, :meth:`release`
    after."""

    def __init__(self, most: int, *, backlog: Callable[[], int], window_s: float = WINDOW_S,
                 cpu: Callable[[], float] = time.process_time, clock: Callable[[], float] = time.monotonic) -> None:
        self.most = most
        self._backlog = backlog
        self.limit = most
        self.window_s = window_s
        self._cpu, self._clock = cpu, clock
        self._lock = threading.Lock()
        self._handed = 0  # calls in step threads now
        self._jobs = 0  # jobs between grant() and release()
        self._since, self._cpu_since = clock(), cpu()

    def grant(self, wanted: int) -> int:
        """How many of ``wanted`` calls the job may hand to step threads; the job runs the rest itself."""
        with self._lock:
            self._adjust()
            alone = self._jobs == 0
            granted = wanted if alone else max(0, min(wanted, self.limit - self._handed))
            self._jobs += 1
            self._handed += granted
            return granted

    def release(self, granted: int) -> None:
        """The job's handed calls have ended."""
        with self._lock:
            self._jobs -= 1
            self._handed -= granted

    def _adjust(self) -> None:
        now = self._clock()
        elapsed = now - self._since
        if elapsed < self.window_s:
            return
        cpu = self._cpu()
        used = (cpu - self._cpu_since) / elapsed  # share of one core over the window
        self._since, self._cpu_since = now, cpu
        if used >= BUSY and self._backlog():
            self.limit = min(self.limit, self._handed) // 2  # half of what is in use, not of an unused limit
        elif used < QUIET:
            self.limit = self.most
        else:
            self.limit = min(self.most, max(1, self.limit * 2))
