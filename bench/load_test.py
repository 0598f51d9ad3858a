"""The seed's load test: 1,000+ ``lead.created`` jobs/min for 5 minutes through real worker processes.

Workers are the ``dramatiq`` CLI as production runs them (``cep_automation.actors --queues leads``,
by default the automation pool's 1 process x 5 threads) with the sandbox's settings; the fakes run
in a child process and this process only produces (fresh leads at ``--rate`` per second) and samples,
every ``--sample-s`` seconds, the queue depth (``LLEN <ns>:leads`` + ``LLEN <ns>:leads.DQ``), the
messages held (``HLEN <ns>:leads.msgs``: waiting and prefetched), the leads done (CRM POST at the
fake) and the workers' CPU; over the run, PostgreSQL transactions and backend CPU per lead. It
prints whether the depth stayed flat: its slope over the run, and the last minute's maximum against
the first minute's. Then the same load on bare Dramatiq
(``dramatiq bare_worker``, the same job logic), one after the other in the same run, for comparison.

    python bench/load_test.py --minutes 1            # quick
    python bench/load_test.py                        # the seed's: 20 leads/s (1,200/min) for 5 minutes each

Options: ``--rate`` (20/s), ``--minutes`` (5), ``--processes``/``--threads`` (1/5), ``--sample-s`` (5),
``--no-baseline`` (ours only), ``--whatsapp-rate-limit`` (80, production's default: 20 leads/s send 40).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Any

import psycopg
import redis
from common import (
    WorkerProcesses,
    bench_services,
    cpu_seconds,
    insert_leads,
    machine_line,
    paced,
    percentile,
    versions_line,
    wait_until,
)


class Sampler(threading.Thread):
    """Every ``every`` seconds: (seconds since start, depth, held, done, worker CPU seconds)."""

    def __init__(self, client: redis.Redis, namespace: str, sandbox: Any, workers: WorkerProcesses,
                 every: float) -> None:
        super().__init__(daemon=True)
        self.client, self.namespace, self.sandbox, self.workers, self.every = client, namespace, sandbox, workers, every
        self.samples: list[tuple[float, int, int, int, float]] = []
        self.start_time = time.monotonic()
        self.done_before = sandbox.done()
        self._stop_event = threading.Event()

    def sample(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(f"{self.namespace}:leads")
        pipe.llen(f"{self.namespace}:leads.DQ")
        pipe.hlen(f"{self.namespace}:leads.msgs")
        waiting, delayed, held = pipe.execute()
        done = self.sandbox.done() - self.done_before
        self.samples.append((time.monotonic() - self.start_time, waiting + delayed, held, done, self.workers.cpu()))

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


def postgres_usage(database_url: str) -> tuple[int, dict[int, float]]:
    """Transactions so far in the scratch database, and the CPU seconds of each backend connected to it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        xacts = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database"
                             " WHERE datname = current_database()").fetchone()[0]
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                               " AND pid <> pg_backend_pid()")]
    return xacts, {pid: cpu_seconds(pid) for pid in pids}


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def run_system(name: str, actor: Any, namespace: str, services: Any, sandbox: Any, args: argparse.Namespace,
               log_path: str) -> dict[str, Any]:
    """Start workers, produce ``--rate`` for ``--minutes`` while sampling, drain, stop; the figures."""
    workers = WorkerProcesses(name, args.processes, args.threads, log_path)
    try:
        probe = insert_leads(services.database_url, 1)
        actor.send(lead_id=probe[0])
        try:
            sandbox.learn_calls_per_lead(probe[0])
        except RuntimeError as exc:
            raise RuntimeError(f"{name} workers did not process a first lead; see {log_path}") from exc
        lead_ids = insert_leads(services.database_url, int(args.rate * 60 * args.minutes))
        sampler = Sampler(redis.Redis.from_url(services.redis_url), namespace, sandbox, workers, args.sample_s)
        cpu_before, (xacts_before, backends_before) = workers.cpu(), postgres_usage(services.database_url)
        sampler.start()
        sent, offered, lag = paced(actor, lead_ids, args.rate)
        produced_at = time.monotonic() - sampler.start_time
        drained = wait_until(lambda: set(lead_ids) <= sandbox.stamps().keys(), args.drain_timeout, poll_s=0.5)
        drain_s = time.monotonic() - sampler.start_time - produced_at
        sampler.stop()
        cpu = workers.cpu() - cpu_before
        time.sleep(1.5)  # backends report their transaction counts at most once a second
        xacts, backends = postgres_usage(services.database_url)
    finally:
        workers.stop()
    stamps = sandbox.stamps()
    latencies = [(stamps[lead] - sent[lead]) * 1000 for lead in lead_ids if lead in stamps]
    return {"samples": sampler.samples, "produced_at": produced_at, "drain_s": drain_s, "drained": drained,
            "sent": len(lead_ids), "done": len(latencies), "offered": offered, "lag_ms": lag * 1000,
            "cpu_ms": cpu * 1000 / len(lead_ids), "latencies": latencies,
            "pg_xacts": (xacts - xacts_before) / len(lead_ids),
            "pg_cpu_ms": sum(c - backends_before.get(pid, 0.0) for pid, c in backends.items()) * 1000 / len(lead_ids)}


def depth_figures(result: dict[str, Any]) -> dict[str, float]:
    """Depth in the first and last minute of production, its slope, and the slope of leads not yet done."""
    during = [s for s in result["samples"] if s[0] <= result["produced_at"]]
    end = result["produced_at"]
    first = [s[1] for s in during if s[0] <= 60] or [0]
    last = [s[1] for s in during if s[0] >= end - 60] or [0]

    def sent_at(t: float) -> float:
        return min(result["sent"], t * result["offered"])

    return {"first_max": max(first), "last_max": max(last), "max": max((s[1] for s in during), default=0),
            "held_max": max((s[2] for s in during), default=0),
            "slope": slope_per_minute([(s[0], s[1]) for s in during]),
            "backlog_slope": slope_per_minute([(s[0], sent_at(s[0]) - s[3]) for s in during])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="leads per second (default 20 = 1,200/min)")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of load per system (default 5)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1, as production)")
    parser.add_argument("--threads", type=int, default=5, help="threads per process (default 5, the automation pool)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="wait for the backlog after the load, s")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare-Dramatiq run")
    parser.add_argument("--whatsapp-rate-limit", type=int, default=80, help="WHATSAPP_RATE_LIMIT (default 80)")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="added to every fake answer (default 0)")
    args = parser.parse_args()
    print(f"before: {machine_line()}", file=sys.stderr)
    with bench_services(args.whatsapp_rate_limit, args.api_latency_ms) as (services, sandbox):
        status = run(services, sandbox, args)
    print(f"after: {machine_line()}", file=sys.stderr)
    return status


def run(services: Any, sandbox: Any, args: argparse.Namespace) -> int:
    import bare_leads

    from cep_automation.actors import lead_created

    bare = bare_leads.make_broker(services.redis_url, services.namespace)
    systems = {"ours": (lead_created, services.namespace)}
    if not args.no_baseline:
        systems = {"bare": (bare_leads.declare(bare), f"{services.namespace}-bare"), **systems}
    log_path = os.path.join(tempfile.gettempdir(), f"cep-bench-load-{os.getpid()}.log")
    results = {}
    for name, (actor, namespace) in systems.items():
        print(f"{name}: {args.rate:g} leads/s for {args.minutes:g} min ...", file=sys.stderr)
        results[name] = run_system(name, actor, namespace, services, sandbox, args, log_path)
        for t, depth, held, done, cpu in results[name]["samples"]:
            print(f"  {name} t={t:6.1f}s depth {depth:5d} held {held:5d} done {done:6d} cpu {cpu:7.1f}s",
                  file=sys.stderr)
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    report(results, args, dead, log_path)
    return 0 if all(r["done"] == r["sent"] for r in results.values()) else 1


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, dead: int, log_path: str) -> None:
    figures = {name: {**depth_figures(r), **r} for name, r in results.items()}
    names = list(figures)
    print(f"lead.created load test: {args.rate:g} leads/s ({args.rate * 60:,.0f}/min) for {args.minutes:g} min, "
          f"dramatiq CLI {args.processes} process(es) x {args.threads} threads; {versions_line()}")
    print(f"{'':34}" + "".join(f"{'bare dramatiq' if n == 'bare' else 'cep stack':>15}" for n in names)
          + (f"{'ratio':>8}" if len(names) == 2 else ""))
    rows = (("jobs done / sent", lambda f: f"{f['done']}/{f['sent']}"),
            ("offered rate (jobs/min)", lambda f: f"{f['offered'] * 60:.0f}"),
            ("queue depth max, first minute", lambda f: f"{f['first_max']:.0f}"),
            ("queue depth max, last minute", lambda f: f"{f['last_max']:.0f}"),
            ("queue depth max, whole run", lambda f: f"{f['max']:.0f}"),
            ("queue depth slope (msgs/min)", lambda f: f"{f['slope']:+.2f}"),
            ("not-yet-done slope (leads/min)", lambda f: f"{f['backlog_slope']:+.2f}"),
            ("held by workers max (HLEN .msgs)", lambda f: f"{f['held_max']:.0f}"),
            ("drain after the load (s)", lambda f: f"{f['drain_s']:.1f}"),
            ("latency p50 (ms)", lambda f: f"{percentile(f['latencies'], 50):.0f}"),
            ("latency p95 (ms)", lambda f: f"{percentile(f['latencies'], 95):.0f}"),
            ("latency p99 (ms)", lambda f: f"{percentile(f['latencies'], 99):.0f}"),
            ("worker CPU (ms/lead)", lambda f: f"{f['cpu_ms']:.1f}"),
            ("PostgreSQL transactions per lead", lambda f: f"{f['pg_xacts']:.1f}"),
            ("PostgreSQL backend CPU (ms/lead)", lambda f: f"{f['pg_cpu_ms']:.1f}"))
    for label, cell in rows:
        line = f"{label:34}" + "".join(f"{cell(figures[n]):>15}" for n in names)
        if len(names) == 2 and label.startswith(("latency", "worker CPU", "PostgreSQL")):
            line += f"{float(cell(figures['ours'])) / float(cell(figures['bare'])):8.2f}"
        print(line)
    for name, f in figures.items():
        flat = f["last_max"] <= f["first_max"] + args.rate and abs(f["slope"]) * args.minutes < args.rate
        print(f"{name}: depth {'stayed FLAT' if flat else 'did NOT stay flat'} (last-minute max {f['last_max']:.0f} "
              f"vs first-minute max {f['first_max']:.0f}; slope {f['slope']:+.2f}/min)")
    with open(log_path, errors="replace") as log:
        problems = sum(1 for line in log if "[WARNING]" in line or "[ERROR]" in line or "[CRITICAL]" in line)
    print(f"dead letters (ours): {dead}; warnings and errors in the worker log: {problems} ({log_path})")


if __name__ == "__main__":
    sys.exit(main())
