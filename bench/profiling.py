"""cProfile of Dramatiq worker threads: where a benchmark round spends its time.

cProfile only sees the thread that enables it, so :class:`ThreadProfile` enables one profiler in
each worker thread (``after_worker_thread_boot``) and merges them when the threads stop. The
consumer threads and our background writers (job state, audit) are not in it; the CPU figures of
the benchmarks include them.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq import Middleware


class ThreadProfile(Middleware):
    """Profiles every worker thread while :attr:`active`; :meth:`stats` merges what they saw."""

    def __init__(self) -> None:
        self.active = False
        self._local = threading.local()
        self._done: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def after_worker_thread_boot(self, broker: dramatiq.Broker, thread: Any) -> None:
        if self.active:
            self._local.profile = cProfile.Profile()
            self._local.profile.enable()

    def before_worker_thread_shutdown(self, broker: dramatiq.Broker, thread: Any) -> None:
        profile = getattr(self._local, "profile", None)
        if profile is not None:
            profile.disable()
            with self._lock:
                self._done.append(profile)
            self._local.profile = None

    def stats(self) -> pstats.Stats:
        with self._lock:
            profiles, self._done = self._done, []
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        return stats


def profile_round(name: str, broker: dramatiq.Broker, run: Callable[[], Any], path: str) -> None:
    """Run one round with every worker thread profiled; write ``<path>.<name>`` and print the top entries."""
    profiler = ThreadProfile()
    broker.add_middleware(profiler)
    profiler.active = True
    run()
    profiler.active = False
    stats = profiler.stats()
    stats.dump_stats(f"{path}.{name}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(r"cep_automation|bare_leads|dramatiq/(middleware|worker)", 30)
    stats.sort_stats("tottime").print_stats(15)
    print(f"===== profile of one round, {name} (written to {path}.{name}) =====", file=sys.stderr)
    print(out.getvalue(), file=sys.stderr)
