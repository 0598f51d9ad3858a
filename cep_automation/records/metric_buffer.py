"""Job metrics gathered in memory and written to Prometheus's files by one thread.

prometheus_client's multiprocess values take one lock per process for every update and write each to a
memory-mapped file. A job makes five updates (a count and two histograms), and eight worker threads queued on
that lock: a no-op job ran about 1.3x faster with the metrics middleware removed. Here a worker thread only
appends to a deque (atomic under the GIL, no lock); one background thread applies what gathered every
:data:`FLUSH_S`, adding up the counts. ``/metrics`` lags by at most that much (Prometheus scrapes every 15 s or
more); :func:`flush` applies everything at once (rendering in this process, a worker's shutdown, process exit).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from typing import Any

logger = logging.getLogger("cep_automation.records.metric_buffer")

FLUSH_S = 0.5

_pending: deque[tuple[Any, tuple[str, ...], float, bool]] = deque()  # (metric, labels, value, is a count)
_flush_lock = threading.Lock()
_thread: threading.Thread | None = None


def inc(metric: Any, labels: tuple[str, ...], amount: float = 1.0) -> None:
    """Add ``amount`` to the counter ``metric`` for ``labels``, soon."""
    _pending.append((metric, labels, amount, True))
    _ensure_thread()


def observe(metric: Any, labels: tuple[str, ...], value: float) -> None:
    """Observe ``value`` in the histogram ``metric`` for ``labels``, soon."""
    _pending.append((metric, labels, value, False))
    _ensure_thread()


def flush() -> None:
    """Apply every update gathered so far, now. A failure is logged: metrics never fail a job."""
    with _flush_lock:
        counts: dict[tuple[Any, tuple[str, ...]], float] = {}
        observed: list[tuple[Any, tuple[str, ...], float]] = []
        while _pending:
            metric, labels, value, is_count = _pending.popleft()
            if is_count:
                counts[(metric, labels)] = counts.get((metric, labels), 0.0) + value
            else:
                observed.append((metric, labels, value))
        try:
            for (metric, labels), total in counts.items():
                metric.labels(*labels).inc(total)
            for metric, labels, value in observed:
                metric.labels(*labels).observe(value)
        except Exception as exc:
            logger.warning("metrics not recorded: %s", exc)


def _ensure_thread() -> None:
    global _thread
    if _thread is None:
        with _flush_lock:
            if _thread is None:
                _thread = threading.Thread(target=_run, name="cep-metrics", daemon=True)
                _thread.start()


def _run() -> None:
    stop = threading.Event()
    while not stop.wait(FLUSH_S):
        flush()


def _forget_thread() -> None:
    """In a forked child the parent's thread does not exist: the next update starts one."""
    global _thread, _flush_lock
    _thread, _flush_lock = None, threading.Lock()
    _pending.clear()  # the parent's updates are the parent's to write


os.register_at_fork(after_in_child=_forget_thread)
atexit.register(flush)

__all__ = ["FLUSH_S", "flush", "inc", "observe"]
