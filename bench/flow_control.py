"""Flow control measured: a rate shared by two processes, beside plain Dramatiq's window limiter in the same run.

    python bench/flow_control.py                     # 50/s shared by 2 processes for 60 s, each limiter
    python bench/flow_control.py --seconds 20        # quicker
    python bench/flow_control.py --overhead          # also: a no-op job behind a limit that never binds
    python bench/flow_control.py --priority          # only: leads at 20/s behind 2,000 stats jobs (worker processes)
    python bench/flow_control.py --run-at            # only: 100,000 jobs due in one minute (worker processes)
    python bench/flow_control.py --release-rate      # only: how fast one release pass empties 100,000 held jobs

Two processes take slots of one limit as fast as it lets them, for ``--seconds``: ours
(:func:`cep_automation.flow.hold` with ``Limit(rate=50, period_s=1)``, GCRA on Redis) and Dramatiq's
``WindowRateLimiter`` (``limit=50, window=1``, polling at 10 ms, as a Dramatiq user would write it). Every
admission is stamped; the script prints the busiest 1-second window (sliding, at 10 ms steps), the average
rate and the Redis commands per admission. The goal (issue "Flow control"): no 1-second window above 55,
an average of at least 47/s. With ``--overhead`` it also drains a no-op actor of our stack with and without a
declared concurrency limit that never binds (``limits=[PerKey(Limit(concurrency=10000))]``), alternating rounds
in one process, and prints the ratio (goal: at most 10% slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

CHILD = r"""
import json, sys, time
kind, bucket, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
stamps = []
end = time.time() + seconds
if kind == "ours":
    from cep_automation.flow import Limit, hold
    limit = Limit("bench", rate=rate, period_s=1, burst=1, wait_s=5)
    while time.time() < end:
        with hold(limit, bucket):
            stamps.append(time.time())
else:
    from dramatiq.rate_limits import WindowRateLimiter
    from dramatiq.rate_limits.backends import RedisBackend
    from cep_automation.db.redis_client import get_redis
    limiter = WindowRateLimiter(RedisBackend(client=get_redis()), "bench-window-" + bucket, limit=int(rate), window=1)
    while time.time() < end:
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                stamps.append(time.time())
                continue
        time.sleep(0.01)
print(json.dumps(stamps))
"""


def busiest_window(stamps: list[float], width: float = 1.0, step: float = 0.01) -> int:
    """The most admissions in any ``width``-second window, sliding by ``step``."""
    stamps = sorted(stamps)
    best, start, lo, hi = 0, stamps[0], 0, 0
    while start <= stamps[-1]:
        while lo < len(stamps) and stamps[lo] < start:
            lo += 1
        while hi < len(stamps) and stamps[hi] < start + width:
            hi += 1
        best = max(best, hi - lo)
        start += step
    return best


def run(kind: str, args: argparse.Namespace, env: dict[str, str], redis_url: str) -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(redis_url)
    before = sum(v["calls"] for v in client.info("commandstats").values())
    bucket = uuid.uuid4().hex[:8]
    argv = [sys.executable, "-c", CHILD, kind, bucket, str(args.rate), str(args.seconds)]
    children = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
    stamps = [t for child in children for t in json.loads(child.communicate(timeout=args.seconds + 120)[0])]
    calls = sum(v["calls"] for v in client.info("commandstats").values()) - before
    span = max(stamps) - min(stamps)
    return {"admitted": len(stamps), "average": len(stamps) / span if span else 0.0,
            "busiest": busiest_window(stamps), "commands": calls / max(1, len(stamps))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--overhead", action="store_true", help="also measure a limit that never binds")
    parser.add_argument("--fairness", action="store_true", help="also: key A 2,000 jobs then key B 20")
    parser.add_argument("--ordering", action="store_true", help="also: 100 keys x 20 jobs, 10%% failing once")
    parser.add_argument("--messages", type=int, default=3000, help="messages per overhead round (3000)")
    parser.add_argument("--priority", action="store_true", help="only: leads' wait behind 2,000 stats jobs")
    parser.add_argument("--run-at", action="store_true", help="only: 100,000 jobs due within one minute")
    parser.add_argument("--run-at-count", type=int, default=100_000)
    parser.add_argument("--release-rate", action="store_true", help="only: one release pass, 1, 2 and 4 threads")
    args = parser.parse_args()
    from cep_automation.testing.services import TestServices

    services = TestServices.start()
    if args.priority or args.run_at or args.release_rate:
        return timing_main(args, services)
    try:
        env = {**os.environ, **services.env()}
        results = {kind: run(kind, args, env, services.redis_url) for kind in ("dramatiq", "ours")}
        os.environ.update(services.env())
        overhead = limiter_overhead(args) if args.overhead else None
        fair = fairness_run() if args.fairness else None
        ordered = ordering_run() if args.ordering else None
    finally:
        services.stop()
    print(f"a {args.rate:g}/s limit shared by {args.processes} processes for {args.seconds:g} s "
          f"({time.strftime('%Y-%m-%d')}, load {os.getloadavg()[0]:.1f})")
    print(f"{'':34}{'dramatiq window':>16}{'cep flow':>12}")
    for key, label, fmt in (("admitted", "admitted", ".0f"), ("average", "average rate (/s)", ".1f"),
                            ("busiest", "busiest 1-second window", ".0f"),
                            ("commands", "Redis commands per admission", ".1f")):
        print(f"{label:34}{results['dramatiq'][key]:16{fmt}}{results['ours'][key]:12{fmt}}")
    ours = results["ours"]
    verdict = ours["busiest"] <= args.rate * 1.1 and ours["average"] >= args.rate * 0.94
    print("goal (busiest <= 1.1 x rate, average >= 0.94 x rate):", "met" if verdict else "NOT met")
    if overhead is not None:
        plain, limited = overhead
        print(f"no-op job, {args.messages} x 3 rounds, 8 threads: {plain:.0f}/s plain, {limited:.0f}/s behind a limit "
              f"that never binds: ratio {limited / plain:.2f} (goal >= 0.90)")
    if fair is not None:
        print("fairness: key A sends 2,000 jobs (5 ms each), then key B 20; 8 threads, one process")
        for name, row in fair.items():
            print(f"  {name:16} B's last job finished {row['b_last']:5d}th of 2,020 (A's jobs done before it: "
                  f"{row['a_before']}); Jain's index over windows of 100 while both wait: {row['jain']:.2f}")
    if ordered is not None:
        print("ordering: 100 keys x 20 jobs (2 ms each), one in ten failing its first try; 8 threads, one process")
        for name, row in ordered.items():
            print(f"  {name:16} {row['rate']:7.0f} jobs/s  order violations {row['violations']}")
        ratio = ordered["ordering keys"]["rate"] / ordered["no keys"]["rate"]
        print(f"  throughput with ordering / without: {ratio:.2f} (goal >= 0.80)")
    return 0 if verdict else 1


def timing_main(args: argparse.Namespace, services: Any) -> int:
    """--priority and --run-at (bench/flow_timing.py), ours and plain Dramatiq's worker processes."""
    import tempfile

    import flow_timing

    metrics_dir = tempfile.mkdtemp(prefix="cep-bench-prometheus-")
    log = os.path.join(tempfile.gettempdir(), "cep-bench-flow-workers.log")
    os.environ.update({**services.env(), "CEP_METRICS_PORT": "0", "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
                       "CEP_QUEUE_LIMITS": "bench-runat=1000000/1000000", "CEP_LOG_LEVEL": "WARNING"})
    verdict = True
    try:
        if args.priority:
            print(f"priority: 2,000 stats jobs of 50 ms waiting, leads at 20/s for 15 s; 1 worker process x 5 "
                  f"threads ({time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}; workers' log {log})")
            for system, row in flow_timing.priority_run(log).items():
                print(f"  {system:6} leads {row['leads']:.0f}: wait p50 {row['p50'] * 1000:6.0f} ms  p95 "
                      f"{row['p95'] * 1000:6.0f} ms  max {row['max'] * 1000:6.0f} ms; stats done meanwhile "
                      f"{row['stats_done']:.0f} (load {row['load']:.1f})")
                verdict = verdict and (system != "ours" or row["p95"] < 0.5)
        if args.run_at:
            print(f"run-at: {args.run_at_count:,} jobs due within one minute; 2 worker processes x 8 threads "
                  f"({time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f})")
            for system, row in flow_timing.run_at_run(log, args.run_at_count).items():
                print(f"  {system:6} started {row['started']:.0f}; late p50 {row['p50']:.2f} s  p95 {row['p95']:.2f} s"
                      f"  p99 {row['p99']:.2f} s  max {row['max']:.2f} s; over 10 s: {row['over_10s']:.0f}"
                      f" (load {row['load']:.1f}); setup {row['setup_s']:.1f} s;"
                      f" workers' CPU {row['worker_cpu_s']:.0f} s")
                if system == "ours":
                    print(f"         release: {row['passes']:.0f} passes, the first released "
                          f"{row['first_pass_released']:.0f} in {row['first_pass_s']:.1f} s "
                          f"({row['release_rate']:.0f}/s); released after their time: {row['released_late']:.0f};"
                          f" least time left at release {row['min_slack_s']:.1f} s; releaser's CPU "
                          f"{row['release_cpu_s']:.1f} s")
                    verdict = verdict and row["started"] == args.run_at_count and row["over_10s"] == 0
        if args.release_rate:
            print(f"release: one pass over {args.run_at_count:,} held jobs due within 30-90 s, no workers "
                  f"({time.strftime('%Y-%m-%d %H:%M')})")
            for threads, row in flow_timing.release_rate_run(args.run_at_count).items():
                print(f"  {threads} releaser thread(s): {row['released']:.0f} released in {row['seconds']:.1f} s "
                      f"({row['rate']:.0f}/s; load {row['load']:.1f})")
    finally:
        from cep_automation.db.pool import close_pool

        close_pool()
        services.stop()
    return 0 if verdict else 1


def _stack_broker(tag: str) -> tuple[Any, Any]:
    """Our broker in a namespace of its own, and a plain Dramatiq one beside it."""
    from dramatiq.brokers.redis import RedisBroker

    from cep_automation.broker import build_broker
    from cep_automation.settings import get_settings

    settings = get_settings()
    ours = build_broker(settings.model_copy(update={"cep_namespace": f"{settings.cep_namespace}-{tag}"}))
    plain = RedisBroker(url=settings.redis_url, namespace=f"{settings.cep_namespace}-{tag}-plain")
    return ours, plain


def _run_worker(broker: Any, queue: str, until: Any, threads: int = 8) -> float:
    import dramatiq

    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    started = time.perf_counter()
    worker.start()
    while not until():
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    worker.stop()
    return elapsed


def jain(shares: list[float]) -> float:
    return sum(shares) ** 2 / (len(shares) * sum(x * x for x in shares)) if any(shares) else 1.0


def fairness_run() -> dict[str, dict[str, float]]:
    """Key A's 2,000 jobs then key B's 20: where B's last one finishes, with fairness keys and in a plain queue."""
    return {name: _fairness_once(fair) for name, fair in (("plain Dramatiq", False), ("fairness keys", True))}


def _fairness_once(fair: bool) -> dict[str, float]:
    import threading

    import dramatiq
    from dramatiq import Message

    from cep_automation import options as opt
    from cep_automation.flow import fairness

    ours, plain = _stack_broker("fair")
    broker = ours if fair else plain
    done: list[str] = []
    lock = threading.Lock()

    def job(key: str, n: int) -> None:
        time.sleep(0.005)
        with lock:
            done.append(key)

    dramatiq.actor(job, actor_name="bench.fair", queue_name="bench-fair", broker=broker)
    for key, count in (("A", 2000), ("B", 20)):
        for n in range(count):
            message = Message(queue_name="bench-fair", actor_name="bench.fair", args=(),
                              kwargs={"key": key, "n": n}, options={opt.FAIRNESS_KEY: key} if fair else {})
            if fair:
                fairness.enqueue(broker, message, key)
            else:
                broker.enqueue(message)
    _run_worker(broker, "bench-fair", lambda: len(done) >= 2020)
    b_last = max(i for i, key in enumerate(done) if key == "B") + 1
    windows = [done[i:i + 100] for i in range(0, b_last, 100)]
    ours.close()
    plain.close()
    return {"b_last": b_last, "a_before": done[:b_last].count("A"),
            "jain": sum(jain([w.count("A") / len(w), w.count("B") / len(w)]) for w in windows) / max(1, len(windows))}


def ordering_run() -> dict[str, dict[str, float]]:
    """100 keys x 20 jobs with 10% failing once: throughput and order violations, with and without ordering keys."""
    return {name: _ordering_once(ordered) for name, ordered in (("no keys", False), ("ordering keys", True))}


def _ordering_once(ordered: bool) -> dict[str, float]:
    import threading

    import dramatiq

    from cep_automation.runtime.actor import CepActor
    from cep_automation.runtime.enqueue import enqueue

    broker, plain = _stack_broker("order" + ("-k" if ordered else ""))
    finished: dict[str, list[int]] = {}
    failed_once: set[tuple[str, int]] = set()
    lock = threading.Lock()

    def job(key: str, n: int) -> None:
        time.sleep(0.002)
        with lock:
            if n % 10 == 3 and (key, n) not in failed_once:
                failed_once.add((key, n))
                raise RuntimeError("a hiccup")
            finished.setdefault(key, []).append(n)

    actor = dramatiq.actor(job, actor_name="bench.ordered", queue_name="bench-order", broker=broker,
                           actor_class=CepActor, max_retries=3, min_backoff=10, max_backoff=50)
    for n in range(20):
        for k in range(100):
            enqueue(actor, {"key": f"k{k}", "n": n}, **({"ordering_key": f"k{k}"} if ordered else {}))
    elapsed = _run_worker(broker, "bench-order", lambda: sum(len(v) for v in finished.values()) >= 2000)
    violations = sum(1 for ns in finished.values() for a, b in zip(ns, ns[1:], strict=False) if b < a)
    broker.close()
    plain.close()
    return {"rate": 2000 / elapsed, "violations": violations}


def limiter_overhead(args: argparse.Namespace) -> tuple[float, float]:
    """Median processing rates of a no-op actor of our stack, without and with a never-binding limit."""
    import logging
    import statistics

    import dramatiq
    from middleware_overhead import drain

    from cep_automation.broker import build_broker
    from cep_automation.flow import Limit
    from cep_automation.flow.per_key import PerKey
    from cep_automation.runtime.actor import CepActor
    from cep_automation.settings import get_settings

    logging.getLogger("dramatiq").setLevel(logging.ERROR)
    broker = build_broker(get_settings())

    def noop() -> None:
        pass

    plain = dramatiq.actor(noop, actor_name="bench.plain", queue_name="bench-plain", broker=broker,
                           actor_class=CepActor)
    limited = dramatiq.actor(noop, actor_name="bench.limited", queue_name="bench-limited", broker=broker,
                             actor_class=CepActor, limits=[PerKey(Limit("bench.never", concurrency=10_000))])
    rates: dict[str, list[float]] = {"plain": [], "limited": []}
    drain(broker, plain, 200, 8)
    drain(broker, limited, 200, 8)
    for _ in range(3):
        rates["plain"].append(drain(broker, plain, args.messages, 8)[1])
        rates["limited"].append(drain(broker, limited, args.messages, 8)[1])
    return statistics.median(rates["plain"]), statistics.median(rates["limited"])


if __name__ == "__main__":
    sys.exit(main())
