"""Latency of ``lead.created`` from enqueue to its last effect at a steady rate: our stack vs bare Dramatiq.

A producer sends fresh leads at a fixed rate (default 50 leads/s) for a bounded time while an
in-process ``dramatiq.Worker`` — or, with ``--processes N``, the ``dramatiq`` CLI as production runs
it — processes them, after 2 s of warm-up at the same rate; the latency of a lead runs from just before its
``send()`` to the arrival at the fakes of the last of its provider calls (the steps run at once, so the
CRM's POST need not be the last; a probe lead tells how many calls a lead makes), both read from
``time.monotonic()``. Bare Dramatiq (``bench/bare_leads.py``) and ours alternate,
on the same Redis, PostgreSQL and fakes; the script prints p50/p95/p99 of each and the ratios.

    python bench/latency.py                                  # quick: 50 leads/s for 20 s, 1 round each
    python bench/latency.py --duration 60 --rounds 3         # full run
    python bench/latency.py --processes 2 --threads 5        # CLI workers, two processes

Options: ``--rate`` leads/s (50); ``--threads`` per process (8); ``--worker-timeout`` ms, Dramatiq's idle poll
back-off cap of the in-process worker (1000, the CLI's default); ``--api-latency-ms`` added to every fake answer (0);
``--whatsapp-rate-limit`` (1000000; at Meta's default of 80/s, 50 leads/s x 2 messages would queue).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import dramatiq
from common import (
    WorkerProcesses,
    bench_services,
    insert_leads,
    machine_line,
    paced,
    percentile,
    versions_line,
    wait_until,
)

PERCENTILES = (50, 95, 99)


def start_workers(name: str, broker: dramatiq.Broker, args: argparse.Namespace, log_path: str) -> Callable[[], None]:
    """Start the workers of one system; returns the function that stops them."""
    if args.processes:
        workers = WorkerProcesses(name, args.processes, args.threads, log_path)
        return workers.stop
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=args.worker_timeout)
    worker.start()
    return worker.stop  # type: ignore[no-any-return]


def steady_run(name: str, system: tuple[dramatiq.Broker, Any], sandbox: Any, database_url: str,
               args: argparse.Namespace, log_path: str) -> dict[str, Any]:
    """Start the workers, then one steady stream: 2 s of warm-up (not measured), then ``--duration`` s measured."""
    broker, actor = system
    stop = start_workers(name, broker, args, log_path)
    try:
        probe = insert_leads(database_url, 1)  # the workers are up once this one is done
        actor.send(lead_id=probe[0])
        sandbox.learn_calls_per_lead(probe[0])
        warm = insert_leads(database_url, int(args.rate * 2))
        lead_ids = insert_leads(database_url, int(args.rate * args.duration))
        sent, offered, lag = paced(actor, warm + lead_ids, args.rate)
        wait_until(lambda: set(lead_ids) <= sandbox.stamps().keys(), args.drain_timeout, poll_s=0.5)
    finally:
        stop()
    stamps = sandbox.stamps()
    latencies = [(stamps[lead] - sent[lead]) * 1000 if lead in stamps else None for lead in lead_ids]
    quarter = max(1, len(lead_ids) // 4)
    return {"latencies": [ms for ms in latencies if ms is not None], "offered": offered, "lag_ms": lag * 1000,
            "missing": latencies.count(None),
            "first_quarter": [ms for ms in latencies[:quarter] if ms is not None],
            "last_quarter": [ms for ms in latencies[-quarter:] if ms is not None]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="leads per second (default 50)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per round (default 20)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per system, alternating (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    parser.add_argument("--processes", type=int, default=0,
                        help="0: an in-process dramatiq.Worker (default); N: `dramatiq` CLI with N processes")
    parser.add_argument("--worker-timeout", type=int, default=1000, help="Dramatiq's idle back-off cap, ms (1000)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="wait for stragglers, s (default 120)")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="added to every fake answer (default 0)")
    parser.add_argument("--whatsapp-rate-limit", type=int, default=1_000_000, help="WHATSAPP_RATE_LIMIT per second")
    args = parser.parse_args()
    logging.getLogger("dramatiq").setLevel(logging.ERROR)
    print(f"before: {machine_line()}", file=sys.stderr)
    with bench_services(args.whatsapp_rate_limit, args.api_latency_ms) as (services, sandbox):
        return run(services, sandbox, args)


def run(services: Any, sandbox: Any, args: argparse.Namespace) -> int:
    import bare_leads

    from cep_automation.actors import broker as stack
    from cep_automation.actors import lead_created

    bare = bare_leads.make_broker(services.redis_url, services.namespace)
    systems = {"bare": (bare, bare_leads.declare(bare)), "ours": (stack, lead_created)}
    log_path = os.path.join(tempfile.gettempdir(), f"cep-bench-latency-{os.getpid()}.log")
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "ours": []}
    for round_no in range(1, args.rounds + 1):
        for name, system in systems.items():
            row = steady_run(name, system, sandbox, services.database_url, args, log_path)
            results[name].append(row)
            figures = "  ".join(f"p{p} {percentile(row['latencies'], p):6.1f} ms" for p in PERCENTILES)
            trend = f"{percentile(row['first_quarter'], 50):.0f}/{percentile(row['last_quarter'], 50):.0f}"
            print(f"round {round_no} {name}: {figures}  p50 first/last quarter {trend} ms  "
                  f"offered {row['offered']:.1f}/s  producer lag max {row['lag_ms']:.0f} ms  missing {row['missing']}",
                  file=sys.stderr)
    report(results, args, log_path)
    print(f"after: {machine_line()}", file=sys.stderr)
    return 1 if any(r["missing"] for rows in results.values() for r in rows) else 0


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, log_path: str) -> None:
    pooled = {name: [ms for row in rows for ms in row["latencies"]] for name, rows in results.items()}
    print(f"lead.created enqueue -> last provider call, {args.rate:g} leads/s for {args.duration:g} s"
          f" x {args.rounds} rounds, "
          f"{args.threads} worker threads, worker timeout {args.worker_timeout} ms, fake API latency "
          f"{args.api_latency_ms:g} ms; {versions_line()}")
    if args.processes:
        print(f"workers: dramatiq CLI, {args.processes} process(es) x {args.threads} threads (log: {log_path})")
    print(f"{'':20}{'bare dramatiq':>15}{'cep stack':>15}{'ratio':>8}")
    for p in (*PERCENTILES, 100):
        bare, ours = percentile(pooled["bare"], p), percentile(pooled["ours"], p)
        label = "max (ms)" if p == 100 else f"p{p} (ms)"
        print(f"{label:20}{bare:15.1f}{ours:15.1f}{ours / bare:8.2f}")
    first = {name: percentile([ms for r in rows for ms in r["first_quarter"]], 50) for name, rows in results.items()}
    last = {name: percentile([ms for r in rows for ms in r["last_quarter"]], 50) for name, rows in results.items()}
    print(f"{'p50 first quarter':20}{first['bare']:15.1f}{first['ours']:15.1f}{first['ours'] / first['bare']:8.2f}")
    print(f"{'p50 last quarter':20}{last['bare']:15.1f}{last['ours']:15.1f}{last['ours'] / last['bare']:8.2f}")
    for name in results:
        if last[name] > 1.5 * first[name]:
            print(f"{name}: p50 rose from the first to the last quarter: the workers did not keep up with the rate")
    for name, rows in results.items():
        offered = min(row["offered"] for row in rows)
        print(f"{name}: {len(pooled[name])} leads measured, {sum(r['missing'] for r in rows)} missing, "
              f"lowest offered rate {offered:.1f}/s, producer lag max {max(r['lag_ms'] for r in rows):.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
