"""Throughput of ``lead.created`` against the loopback fakes: cep_automation's full stack vs bare Dramatiq.

"ours" is the real ``lead.created`` actor on the broker ``cep_automation.actors`` builds (validation,
idempotency, effects ledger, job state, audit rows, metrics, dead letters, retries); "bare" is the same
job logic on a plain ``RedisBroker`` (``bench/bare_leads.py``). Both run in this process, on the same
Redis, PostgreSQL and fakes (in a child process), in alternating rounds with the same worker threads.
Each round inserts fresh leads, enqueues them all, then times an in-process ``dramatiq.Worker``
draining them; the script prints both medians and the ratio.

    python bench/lead_throughput.py                                   # quick: 300 leads x 3 rounds
    python bench/lead_throughput.py --leads 2000 --rounds 5          # full run
    python bench/lead_throughput.py --profile /tmp/leads.prof         # plus one cProfiled round each

Options: ``--threads`` worker threads (8); ``--api-latency-ms`` added to every fake answer (0: the
worst case for our overhead); ``--whatsapp-rate-limit`` (1000000: Meta's 80/s would cap both runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import dramatiq
from common import (
    EMAILS,
    QUEUE,
    WORKER_TIMEOUT_MS,
    bench_services,
    cpu_seconds,
    insert_leads,
    machine_line,
    median,
    versions_line,
)


def pool_queues(broker: dramatiq.Broker) -> set[str] | None:
    """The automation pool's queues for our broker; None (every queue) for the bare one, which has one."""
    from cep_automation.queues import POOLS

    return set(POOLS["automation"].queues) if QUEUE in broker.get_declared_queues() and len(
        broker.get_declared_queues()) > 2 else None


def drain(broker: dramatiq.Broker, actor: Any, sandbox: Any, database_url: str, leads: int,
          threads: int) -> dict[str, float]:
    """Enqueue ``leads`` new leads, then process them all; rates per second and CPU per lead."""
    lead_ids = insert_leads(database_url, leads)
    reached_before = sandbox.done()
    started = time.perf_counter()
    for lead_id in lead_ids:
        actor.send(lead_id=lead_id)
    enqueued = time.perf_counter()
    cpu_before, fakes_before = time.process_time(), cpu_seconds(sandbox.process.pid)
    # Each system's worker consumes what its pool does in production: bare its one queue, ours the automation
    # pool's queues (leads, campaigns, stats), not every queue the actors module declares.
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS,
                             queues=pool_queues(broker))
    worker.start()
    begin = time.perf_counter()
    broker.join(QUEUE, timeout=600_000)
    worker.join()
    done = time.perf_counter()
    cpu, fakes_cpu = time.process_time() - cpu_before, cpu_seconds(sandbox.process.pid) - fakes_before
    worker.stop()
    reached = sandbox.done() - reached_before
    return {"enqueue": leads / (enqueued - started), "process": leads / (done - begin),
            "cpu_ms": cpu * 1000 / leads, "fakes_ms": fakes_cpu * 1000 / leads, "missing": leads - reached}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=300, help="leads per round (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per system, alternating (default 3)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="added to every fake answer (default 0)")
    parser.add_argument("--whatsapp-rate-limit", type=int, default=1_000_000, help="WHATSAPP_RATE_LIMIT per second")
    parser.add_argument("--profile", metavar="FILE", help="after the timed rounds, cProfile one round of each")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the ratios (bench/check.py)")
    args = parser.parse_args()
    logging.getLogger("dramatiq").setLevel(logging.ERROR)  # one Worker per round: Dramatiq warns each time
    print(f"before: {machine_line()}", file=sys.stderr)
    with bench_services(args.whatsapp_rate_limit, args.api_latency_ms) as (services, sandbox):
        return run(services, sandbox, args)


def run(services: Any, sandbox: Any, args: argparse.Namespace) -> int:
    import bare_leads

    from cep_automation.actors import broker as stack
    from cep_automation.actors import lead_created

    bare = bare_leads.make_broker(services.redis_url, services.namespace)
    systems = {"bare": (bare, bare_leads.declare(bare)), "ours": (stack, lead_created)}
    for name, (broker, actor) in systems.items():  # warm up: connections, pools, imports
        drain(broker, actor, sandbox, services.database_url, 30, args.threads)
        calls = sandbox.learn_calls_per_lead(list(EMAILS)[-1])  # the warm-up's last lead: all its calls are in
        print(f"{name}: {calls} provider calls per lead", file=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ours": []}
    for round_no in range(1, args.rounds + 1):
        for name, (broker, actor) in systems.items():
            row = drain(broker, actor, sandbox, services.database_url, args.leads, args.threads)
            results[name].append(row)
            print(f"round {round_no} {name}: enqueue {row['enqueue']:7.0f}/s  process {row['process']:6.1f}/s  "
                  f"cpu {row['cpu_ms']:5.1f} ms/lead  missing {row['missing']:.0f}", file=sys.stderr)
    report(results, args)
    if args.profile:
        from profiling import profile_round

        for name, (broker, actor) in systems.items():
            profile_round(name, broker, lambda b=broker, a=actor: drain(b, a, sandbox, services.database_url,
                                                                        args.leads, args.threads), args.profile)
    print(f"after: {machine_line()}", file=sys.stderr)
    return 1 if any(r["missing"] for rows in results.values() for r in rows) else 0


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    med = {name: {k: median([r[k] for r in rows]) for k in rows[0]} for name, rows in results.items()}
    print(f"lead.created, {args.leads} leads x {args.rounds} rounds, {args.threads} worker threads, "
          f"fake API latency {args.api_latency_ms:g} ms; {versions_line()}")
    print(f"{'':24}{'bare dramatiq':>15}{'cep stack':>15}{'ratio':>8}")
    for key, label, fmt in (("enqueue", "enqueue (leads/s)", "15.0f"), ("process", "process (leads/s)", "15.1f"),
                            ("cpu_ms", "CPU worker (ms/lead)", "15.1f"), ("fakes_ms", "CPU fakes (ms/lead)", "15.1f")):
        ratio = med["ours"][key] / med["bare"][key]
        print(f"{label:24}{med['bare'][key]:{fmt}}{med['ours'][key]:{fmt}}{ratio:8.2f}")
    paired = [o["process"] / b["process"] for b, o in zip(results["bare"], results["ours"], strict=True)]
    print("process ratio per round (each pair run back to back): " + " ".join(f"{r:.2f}" for r in paired))
    missing = {name: sum(r["missing"] for r in rows) for name, rows in results.items()}
    print(f"leads without all their provider calls: bare {missing['bare']:.0f}, ours {missing['ours']:.0f}")
    if args.json:
        print(json.dumps({key: med["ours"][key] / med["bare"][key] for key in ("enqueue", "process")}
                         | {"missing": missing["ours"]}))


if __name__ == "__main__":
    sys.exit(main())
