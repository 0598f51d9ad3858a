"""Is this process backed up? The messages it has fetched that wait for a free worker thread.

The consumer threads register their worker's queue of fetched messages here. The background writers (job
state, acks, audit rows) and the steps' fan-out read :func:`waiting` to choose between freshness and
throughput: while work backs up, a writer gathers longer and sends fewer, bigger batches. Each batch wakes a
thread that competes with the worker threads for the GIL, and a backlog means those threads are the bottleneck.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from queue import Queue
from typing import Any

_work_queues: weakref.WeakSet[Queue[Any]] = weakref.WeakSet()


def register(work_queue: Queue[Any]) -> None:
    """Count ``work_queue`` (a Dramatiq worker's queue of fetched messages) in :func:`waiting`."""
    _work_queues.add(work_queue)


def waiting() -> int:
    """Messages this process has fetched that wait for a free worker thread: work is backing up here."""
    return sum(queue.qsize() for queue in list(_work_queues))


def backed_up(gauge: Callable[[], int]) -> bool:
    """Whether ``gauge`` (a writer's :func:`waiting`, or a test's own) counts any fetched message waiting for a
    worker thread; False if the count fails: a gauge must not stop a writer."""
    try:
        return gauge() > 0
    except Exception:
        return False
