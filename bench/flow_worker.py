"""Jobs for ``bench/flow_control.py --priority`` and ``--run-at``, and a worker module for the Dramatiq CLI::

    BENCH_SYSTEM=ours  dramatiq flow_worker --path bench --queues leads stats bench-runat
    BENCH_SYSTEM=plain dramatiq flow_worker --path bench --queues leads stats bench-runat

``ours`` declares the jobs on ``cep_automation.actors``' broker (the whole stack, ``CepActor``); ``plain`` on
Dramatiq's ``RedisBroker`` in the namespace ``<CEP_NAMESPACE>-plain`` with its default middleware. Both with the
same priorities (leads 0, stats 10, as ``queues.POLICIES`` gives ``lead.created`` and ``stats.rollup``). Each job
notes how late it started (seconds since it was sent, or since it was due) in ``<namespace>:bench:<kind>``; the
notes of every worker thread go to Redis in one pipeline every 200 ms.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import dramatiq
import redis

_notes: list[tuple[str, float]] = []
_lock = threading.Lock()


def declare(broker: Any, **options: Any) -> dict[str, Any]:
    """The three bench jobs on ``broker``; their notes go under ``broker.namespace``."""
    flusher = threading.Thread(target=_flush, args=(broker.client, broker.namespace), daemon=True)
    flusher.start()

    def lead(sent: float) -> None:
        _note("lead", time.time() - sent)

    def stat(sent: float, ms: float) -> None:
        time.sleep(ms / 1000)
        _note("stat", time.time() - sent)

    def run_at(due: float) -> None:
        _note("runat", time.time() - due)

    return {"lead": dramatiq.actor(lead, actor_name="bench.lead", queue_name="leads", priority=0, broker=broker,
                                   **options),
            "stat": dramatiq.actor(stat, actor_name="bench.stat", queue_name="stats", priority=10, broker=broker,
                                   **options),
            "runat": dramatiq.actor(run_at, actor_name="bench.runat", queue_name="bench-runat", priority=0,
                                    broker=broker, **options)}


def notes_key(namespace: str, kind: str) -> str:
    return f"{namespace}:bench:{kind}"


def _note(kind: str, value: float) -> None:
    with _lock:
        _notes.append((kind, value))


def _flush(client: redis.Redis, namespace: str) -> None:
    while True:
        time.sleep(0.2)
        with _lock:
            batch, _notes[:] = list(_notes), []
        if batch:
            pipe = client.pipeline(transaction=False)
            for kind in {kind for kind, _ in batch}:
                pipe.rpush(notes_key(namespace, kind), *[value for each, value in batch if each == kind])
            pipe.execute()


if os.environ.get("BENCH_SYSTEM") == "ours":
    from cep_automation.actors import broker
    from cep_automation.runtime.actor import CepActor

    actors = declare(broker, actor_class=CepActor)
elif os.environ.get("BENCH_SYSTEM") == "plain":
    from dramatiq.brokers.redis import RedisBroker

    from cep_automation.settings import get_settings

    broker = RedisBroker(url=get_settings().redis_url, namespace=f"{get_settings().cep_namespace}-plain")
    dramatiq.set_broker(broker)
    actors = declare(broker)
