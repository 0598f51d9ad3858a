"""``bench/flow_control.py --priority`` and ``--run-at``: timing under load, through real worker processes
(``dramatiq flow_worker``, see ``bench/flow_worker.py``), ours and plain Dramatiq in the same run.

priority: the automation pool (1 process x 5 threads, queues leads and stats) with 2,000 stats jobs of 50 ms
waiting; leads arrive at 20/s for 15 s. Figure: each lead's wait, send → start (goal p95 < 0.5 s).

run-at: 100,000 jobs due within one minute (uniformly from T0 to T0 + 60 s), 2 processes x 8 threads.
Ours: held in ``scheduled_jobs`` (one INSERT: holding is not what is measured) and released by
``runtime.scheduling.release_due`` at the worst phase of its minute tick (T0 - 30 s: everything is due within the
90 s lookahead, the first job 30 s away), ticks every 60 s after that. Plain: the same 100,000 messages sent to
Dramatiq's delay queue beforehand. Figure: each job's start minus its due time (goal: all within 10 s).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Any

from common import BENCH_DIR, cpu_seconds, percentile, stop_process

QUEUES = ["leads", "stats", "bench-runat"]


def _workers(system: str, processes: int, threads: int, log: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dramatiq", "flow_worker", "--path", BENCH_DIR, "--processes", str(processes),
            "--threads", str(threads), "--queues", *QUEUES]
    return subprocess.Popen(argv, env={**os.environ, "BENCH_SYSTEM": system}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)


def _systems() -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each system's broker and its bench jobs, declared in this process for sending (and, ours, releasing)."""
    from dramatiq.brokers.redis import RedisBroker
    from flow_worker import declare

    from cep_automation.actors import broker
    from cep_automation.runtime.actor import CepActor
    from cep_automation.settings import get_settings

    plain = RedisBroker(url=get_settings().redis_url, namespace=f"{get_settings().cep_namespace}-plain")
    return {"plain": (plain, declare(plain)), "ours": (broker, declare(broker, actor_class=CepActor))}


def _notes(broker: Any, kind: str) -> list[float]:
    from flow_worker import notes_key

    return [float(v) for v in broker.client.lrange(notes_key(broker.namespace, kind), 0, -1)]


def _wait_for(broker: Any, kind: str, count: int, timeout: float) -> list[float]:
    from flow_worker import notes_key

    deadline = time.time() + timeout
    while time.time() < deadline and broker.client.llen(notes_key(broker.namespace, kind)) < count:
        time.sleep(0.5)
    return _notes(broker, kind)


def _ready(broker: Any, actors: dict[str, Any]) -> None:
    """Send one lead and wait for it: the workers are up."""
    actors["lead"].send(sent=time.time())
    if not _wait_for(broker, "lead", 1, 120):
        raise RuntimeError("the workers did not start within 120 s")
    broker.client.delete(f"{broker.namespace}:bench:lead")


def priority_run(log: str, backlog: int = 2000, stat_ms: float = 50, rate: float = 20,
                 seconds: float = 15) -> dict[str, dict[str, float]]:
    """Each system: the leads' waits under a backlog of low-priority stats jobs."""
    results = {}
    for system, (broker, actors) in _systems().items():
        proc = _workers(system, 1, 5, log)
        try:
            _ready(broker, actors)
            for _ in range(backlog):
                actors["stat"].send(sent=time.time(), ms=stat_ms)
            start, leads = time.time(), int(rate * seconds)
            for n in range(leads):
                time.sleep(max(0.0, start + n / rate - time.time()))
                actors["lead"].send(sent=time.time())
            waits = _wait_for(broker, "lead", leads, 120)
            stats_done = len(_notes(broker, "stat"))
        finally:
            stop_process(proc)
        results[system] = {"leads": len(waits), "p50": percentile(waits, 50), "p95": percentile(waits, 95),
                           "max": max(waits, default=float("nan")), "stats_done": stats_done,
                           "load": os.getloadavg()[0]}
    return results


def run_at_run(log: str, count: int = 100_000, spread_s: float = 60) -> dict[str, dict[str, float]]:
    """Each system: how late 100,000 jobs due within one minute start."""
    results = {}
    for system, (broker, actors) in _systems().items():
        lead_s = 45.0 if system == "ours" else 30.0 + count / 2500  # plain's sends take time before T0
        due0 = time.time() + lead_s
        dues = sorted(due0 + random.random() * spread_s for _ in range(count))
        proc = _workers(system, 2, 8, log)
        try:
            extra = _hold(dues) if system == "ours" else _send_delayed(actors["runat"], dues)
            if system == "ours":
                extra.update(_release_ticks(due0, dues[-1]))
            lateness = _wait_for(broker, "runat", count, max(0.0, dues[-1] - time.time()) + 300)
            extra["worker_cpu_s"] = cpu_seconds(proc.pid, children=True)
        finally:
            stop_process(proc)
        results[system] = {"started": len(lateness), "p50": percentile(lateness, 50),
                           "p95": percentile(lateness, 95), "p99": percentile(lateness, 99),
                           "max": max(lateness, default=float("nan")),
                           "over_10s": sum(1 for late in lateness if late > 10), "load": os.getloadavg()[0], **extra}
    return results


def _send_delayed(actor: Any, dues: list[float]) -> dict[str, float]:
    """Plain Dramatiq: every message into the delay queue now, each with its own delay."""
    started = time.time()
    for due in dues:
        actor.send_with_options(kwargs={"due": due}, delay=int((due - time.time()) * 1000))
    elapsed = time.time() - started
    return {"setup_s": elapsed, "setup_rate": len(dues) / elapsed}


def _hold(dues: list[float]) -> dict[str, float]:
    """Ours: every job held in ``scheduled_jobs`` (one INSERT of all the rows)."""
    import json
    import uuid

    from cep_automation.db import connection

    started = time.time()
    with connection() as conn:
        conn.execute("INSERT INTO scheduled_jobs (message_id, actor, queue, payload, run_at)"
                     " SELECT m, 'bench.runat', 'bench-runat', p::jsonb, to_timestamp(d)"
                     " FROM unnest(%s::text[], %s::text[], %s::float8[]) AS t(m, p, d)",
                     ([str(uuid.uuid4()) for _ in dues], [json.dumps({"args": [], "kwargs": {"due": d}}) for d in dues],
                      dues))
    return {"setup_s": time.time() - started}


def _release_ticks(due0: float, last_due: float) -> dict[str, float]:
    """``release_due`` as the minute tick would call it, from the worst phase (T0 - 30 s) until all is out."""
    from cep_automation.db import connection
    from cep_automation.runtime.scheduling import release_due

    tick, passes, first, cpu = due0 - 30, [], None, time.process_time()
    while True:
        time.sleep(max(0.0, tick - time.time()))
        began = time.time()
        outcome = release_due()
        passes.append((outcome.released, time.time() - began))
        first = first or passes[0]
        with connection() as conn:
            left = conn.execute("SELECT count(*) AS n FROM scheduled_jobs WHERE status = 'scheduled'").fetchone()
        if not left or not left["n"] or tick > last_due + 60:
            break
        tick += 60
    with connection() as conn:
        late = conn.execute("SELECT count(*) FILTER (WHERE released_at > run_at) AS late,"
                            " min(extract(epoch FROM run_at - released_at)) AS slack FROM scheduled_jobs").fetchone()
    assert first is not None and late is not None
    return {"release_cpu_s": time.process_time() - cpu,
            "passes": len(passes), "first_pass_released": first[0], "first_pass_s": first[1],
            "release_rate": first[0] / first[1] if first[1] else 0.0, "released_late": late["late"],
            "min_slack_s": float(late["slack"] or 0)}


def release_rate_run(count: int = 100_000, releasers: tuple[int, ...] = (1, 2, 4)) -> dict[int, dict[str, float]]:
    """How fast one pass of ``release_due`` empties ``count`` held jobs into the delay queue (no workers), by the
    number of releaser threads; the rows are held again (and the delay queue emptied) between rounds."""
    from cep_automation.actors import broker
    from cep_automation.db import connection
    from cep_automation.runtime import backpressure
    from cep_automation.runtime.scheduling import release_due

    _systems()  # declares bench.runat on our broker
    results = {}
    for threads in releasers:
        broker.client.delete(f"{broker.namespace}:bench-runat.DQ", f"{broker.namespace}:bench-runat.DQ.msgs")
        for name in broker.client.scan_iter(match=f"{broker.namespace}:idem:sent:scheduled:*", count=5000):
            broker.client.delete(name)
        backpressure.forget()
        with connection() as conn:
            conn.execute("DELETE FROM scheduled_jobs")
        due0 = time.time() + 30
        _hold([due0 + random.random() * 60 for _ in range(count)])
        began = time.time()
        outcome = release_due(releasers=threads, budget_s=300)
        elapsed = time.time() - began
        results[threads] = {"released": outcome.released, "seconds": elapsed, "rate": outcome.released / elapsed,
                            "load": os.getloadavg()[0]}
    return results
