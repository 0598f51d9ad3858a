"""Throughput of a no-op actor through bare Dramatiq and through cep_automation's full stack.

Both run in this process, on the same real Redis (and PostgreSQL for the audit rows), in
alternating rounds, with the same worker threads; the script prints both rates and the ratio.

    python bench/middleware_overhead.py [--messages 5000] [--rounds 3] [--threads 8]

Services: the machine's Redis/PostgreSQL at their default ports, else embedded ones
(the same provisioning the test suite uses); a scratch database and namespace are removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker


def drain(broker: dramatiq.Broker, actor: dramatiq.Actor, messages: int, threads: int) -> tuple[float, float]:
    """Enqueue ``messages`` then process them all; returns (enqueue rate, processing rate) per second."""
    started = time.perf_counter()
    for _ in range(messages):
        actor.send()
    enqueued = time.perf_counter()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    begin = time.perf_counter()
    broker.join(actor.queue_name, timeout=600_000)
    worker.join()
    done = time.perf_counter()
    worker.stop()
    return messages / (enqueued - started), messages / (done - begin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the ratios (bench/check.py)")
    args = parser.parse_args()

    import logging

    from cep_automation.testing.services import TestServices

    logging.getLogger("dramatiq").setLevel(logging.ERROR)  # one Worker per round: Dramatiq warns each time

    services = TestServices.start()
    os.environ.update(services.env())
    try:
        return run(services, args)
    finally:
        services.stop()


def run(services, args: argparse.Namespace) -> int:
    from cep_automation.broker import build_broker
    from cep_automation.runtime.actor import CepActor
    from cep_automation.settings import get_settings

    bare = RedisBroker(url=services.redis_url, namespace=f"{services.namespace}-bare")
    stack = build_broker(get_settings())

    def noop() -> None:
        pass

    bare_actor = dramatiq.actor(noop, actor_name="bench.noop", queue_name="bench", broker=bare)
    stack_actor = dramatiq.actor(noop, actor_name="bench.noop", queue_name="bench", broker=stack,
                                 actor_class=CepActor)
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "stack": []}
    drain(bare, bare_actor, 200, args.threads)  # warm up both paths
    drain(stack, stack_actor, 200, args.threads)
    for round_no in range(1, args.rounds + 1):
        for name, broker, actor in (("bare", bare, bare_actor), ("stack", stack, stack_actor)):
            results[name].append(drain(broker, actor, args.messages, args.threads))
            print(f"round {round_no} {name:5}: enqueue {results[name][-1][0]:8.0f}/s  "
                  f"process {results[name][-1][1]:8.0f}/s", file=sys.stderr)
    report(results, args)
    return 0


def report(results: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> None:
    med = {name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
           for name, rows in results.items()}
    print(f"no-op actor, {args.messages} messages x {args.rounds} rounds, {args.threads} worker threads, "
          f"Python {sys.version.split()[0]}, dramatiq {dramatiq.__version__}")
    print(f"{'':22}{'bare dramatiq':>15}{'cep stack':>15}{'ratio':>8}")
    for index, label in ((0, "enqueue (msg/s)"), (1, "process (msg/s)")):
        ratio = med["stack"][index] / med["bare"][index]
        print(f"{label:22}{med['bare'][index]:15.0f}{med['stack'][index]:15.0f}{ratio:8.2f}")
    for index, label in ((0, "enqueue"), (1, "process")):
        paired = [s[index] / b[index] for b, s in zip(results["bare"], results["stack"], strict=True)]
        print(f"{label} ratio per round (each pair run back to back): " + " ".join(f"{r:.2f}" for r in paired))
    if args.json:
        print(json.dumps({"enqueue": med["stack"][0] / med["bare"][0], "process": med["stack"][1] / med["bare"][1]}))


if __name__ == "__main__":
    sys.exit(main())
