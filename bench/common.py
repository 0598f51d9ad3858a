"""Set-up shared by the ``lead.created`` benchmarks: services, the fakes in their own process, leads, figures.

The fakes (:class:`cep_automation.testing.sandbox.Sandbox`) run in a spawned child process, so their
request handling does not compete for the measured process's GIL. The CRM fake stamps each lead's
first POST with ``time.monotonic()`` — one clock for every process on Linux — which the latency
figures use as the lead's last effect (the CRM webhook is the last HTTP request of ``lead.created``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import redis

QUEUE = "leads"
EMAILS: dict[str, str] = {}  # lead id → email, of every lead insert_leads() made in this process
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# How long an idle consumer waits between polls: Dramatiq's default, which both `dramatiq` and `cep-automation
# worker` run with. Shorter (the benchmarks used 50 ms until 2026-12-01) makes every idle queue of a pool poll
# Redis 20 times a second, a cost of how many queues a worker listens to, not of how many messages it handles.
WORKER_TIMEOUT_MS = 1000


# A lead of insert_leads() is named in a provider call by its email, its phone or its name ("Ana García <n>"). The
# phone must not follow a hex digit or a hyphen: the CRM webhook's body starts with the lead's UUID, and about one
# UUID in 80,000 holds "346" and eight digits, which would count that lead's CRM call for another: "missing".
LEAD_MARK = re.compile(rb"ana(\d+)@example\.com|(?<![0-9a-fA-F-])\+?346(\d{8})|Ana Garc(?:\xc3\xada|\\u00ed)a (\d+)")


def _serve_sandbox(conn: Any, latency_s: float) -> None:
    """Child process: run every fake; stamp each provider call with the lead it names; answer on the pipe.

    With ``BENCH_KEEP_ALIVE=1`` in the environment the fakes keep connections alive (HTTP/1.1), as real APIs do;
    by default they close each one (HTTP/1.0), as every figure before 2026-12-01 was measured.

    ``stamps`` is lead email → arrival (``time.monotonic()``) of the latest call naming that lead, and
    ``calls`` lead email → how many calls named it: a lead's last provider call is in once its count stops
    growing (its steps run at once, so the CRM's POST need not be the last).
    """
    from cep_automation.testing.sandbox import Sandbox

    sandbox = Sandbox().start()
    stamps: dict[str, float] = {}
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def stamping(original: Any) -> Any:
        def handle(request: Any) -> Any:
            found = LEAD_MARK.search(request.body or b"") or LEAD_MARK.search(request.path.encode())
            if found:
                email = f"ana{int(next(g for g in found.groups() if g))}@example.com"
                with lock:
                    stamps[email] = time.monotonic()
                    calls[email] = calls.get(email, 0) + 1
            return original(request)
        return handle

    for fake in sandbox.fakes:
        fake.handle = stamping(fake.handle)  # type: ignore[method-assign]
        fake.latency_s = latency_s
        fake.keep_alive = bool(os.environ.get("BENCH_KEEP_ALIVE"))
    conn.send(sandbox.env())
    while (command := conn.recv()) != "stop":
        with lock:
            if command == "counts":
                conn.send({"calls": sum(calls.values()), **{type(f).__name__: len(f.requests) for f in sandbox.fakes}})
            elif command == "calls":
                conn.send(dict(calls))
            else:
                conn.send(dict(stamps))
    sandbox.stop()
    conn.send("stopped")


class SandboxProcess:
    """The fakes in a child process; :attr:`env` points cep_automation at them."""

    def __init__(self, latency_s: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(target=_serve_sandbox, args=(child, latency_s), daemon=True)
        self.process.start()
        if not self._conn.poll(60):
            self.process.kill()
            raise RuntimeError(f"the fakes did not start (exit code {self.process.exitcode})")
        self.env: dict[str, str] = self._conn.recv()
        self.calls_per_lead = 1_000_000  # unknown until learn_calls_per_lead()

    def _ask(self, command: str) -> Any:
        with self._lock:
            self._conn.send(command)
            return self._conn.recv()

    def counts(self) -> dict[str, int]:
        """Requests received per fake, and ``calls``: provider calls that named a lead."""
        return self._ask("counts")  # type: ignore[no-any-return]

    def stamps(self) -> dict[str, float]:
        """Lead id → ``time.monotonic()`` of its last provider call, for the leads whose calls have all arrived."""
        by_email, calls = self._ask("stamps"), self._ask("calls")
        return {lead: by_email[email] for lead, email in EMAILS.items()
                if calls.get(email, 0) >= self.calls_per_lead and email in by_email}

    def done(self) -> int:
        """How many leads have had all their provider calls."""
        return sum(1 for n in self._ask("calls").values() if n >= self.calls_per_lead)

    def learn_calls_per_lead(self, probe: str, timeout: float = 120.0) -> int:
        """Wait until the probe lead's calls stop coming (1.5 s quiet); they are what every lead makes."""
        email, deadline, last, quiet_since = EMAILS[probe], time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            seen = self._ask("calls").get(email, 0)
            if seen != last:
                last, quiet_since = seen, time.monotonic()
            elif seen and time.monotonic() - quiet_since >= 1.5:
                self.calls_per_lead = seen
                return seen
            time.sleep(0.1)
        raise RuntimeError(f"the probe lead made no provider call within {timeout:.0f} s")

    def stop(self) -> None:
        self._ask("stop")
        self.process.join(10)


@contextmanager
def bench_services(whatsapp_rate_limit: int, api_latency_ms: float = 0.0) -> Iterator[tuple[Any, SandboxProcess]]:
    """Scratch PostgreSQL database and Redis namespace, the fakes, and this process's environment set for them."""
    from cep_automation.testing.services import TestServices

    services = TestServices.start()
    prometheus_dir = tempfile.mkdtemp(prefix="cep-bench-prometheus-")
    sandbox = None
    try:
        sandbox = SandboxProcess(api_latency_ms / 1000)
        os.environ.update({**services.env(), **sandbox.env, "CEP_METRICS_PORT": "0",
                           "PROMETHEUS_MULTIPROC_DIR": prometheus_dir,
                           "WHATSAPP_RATE_LIMIT": str(whatsapp_rate_limit)})
        yield services, sandbox
    finally:
        from cep_automation.db.pool import close_pool

        close_pool()
        if sandbox is not None:
            sandbox.stop()
        derived = redis.Redis.from_url(services.redis_url)  # the baseline's "<ns>-bare" keys
        for name in derived.scan_iter(match=f"{services.namespace}-*", count=1000):
            derived.delete(name)
        services.stop()
        shutil.rmtree(prometheus_dir, ignore_errors=True)


def insert_leads(database_url: str, count: int) -> list[str]:
    """``count`` new leads with consent, email, phone and a campus with an advisor: every step of the job runs."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        run = conn.execute("SELECT id FROM course_runs ORDER BY id LIMIT 1").fetchone()
        if run is None:
            campus = conn.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                                  " RETURNING id").fetchone()[0]
            course = conn.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', 'desempleados')"
                                  " RETURNING id").fetchone()[0]
            run = conn.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                               (course, campus)).fetchone()
        start = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
        rows = conn.execute(
            "INSERT INTO leads (name, email, phone, source, course_run_id, consent_at)"
            " SELECT 'Ana García ' || g, 'ana' || g || '@example.com', '+346' || lpad(g::text, 8, '0'), 'web', %s,"
            " now() FROM generate_series(%s::int, %s::int) AS g RETURNING id::text, email",
            (run[0], start + 1, start + count)).fetchall()
    EMAILS.update((row[0], row[1]) for row in rows)
    return [row[0] for row in rows]


def paced(actor: Any, lead_ids: list[str], rate: float) -> tuple[dict[str, float], float, float]:
    """Send at ``rate`` per second; each lead's send time, the rate achieved and the producer's worst lag (s)."""
    sent: dict[str, float] = {}
    lag = 0.0
    start = time.monotonic() + 0.05
    for index, lead_id in enumerate(lead_ids):
        due = start + index / rate
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        lag = max(lag, time.monotonic() - due)
        sent[lead_id] = time.monotonic()
        actor.send(lead_id=lead_id)
    return sent, len(lead_ids) / (time.monotonic() - start), lag


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_line() -> str:
    """Cores and load average now, for the record (other work on the machine moves the figures)."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} {five:.2f} {fifteen:.2f}"


def versions_line() -> str:
    import dramatiq
    import redis

    return (f"Python {sys.version.split()[0]}, dramatiq {dramatiq.__version__}, redis-py {redis.__version__}, "
            f"psycopg {psycopg.__version__}")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of a process (Linux ``/proc``), and of all its descendants with ``children``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if children:
        for kid in _children(pid):
            total += cpu_seconds(kid, children=True)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.exists(f"/proc/{pid}/task") else ():
        try:
            with open(f"/proc/{pid}/task/{task}/children") as kids:
                found.extend(int(k) for k in kids.read().split())
        except FileNotFoundError:
            continue
    return found


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal a process (SIGTERM, as a deploy would), then kill it if it has not ended within 60 s."""
    proc.send_signal(sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate: Any, timeout: float, poll_s: float = 0.1) -> bool:
    """Poll ``predicate`` until truthy or ``timeout`` seconds pass; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


class WorkerProcesses:
    """``dramatiq`` CLI workers on the ``leads`` queue, as production runs them, for "bare" or "ours".

    Parameters:
      system: ``ours`` (``cep_automation.actors``) or ``bare`` (``bench/bare_worker.py``).
      processes, threads: the CLI's ``--processes`` and ``--threads``.
      log_path: where their stdout and stderr go.
    """

    def __init__(self, system: str, processes: int, threads: int, log_path: str) -> None:
        module = ["cep_automation.actors"] if system == "ours" else ["bare_worker", "--path", BENCH_DIR]
        argv = [sys.executable, "-m", "dramatiq", *module, "--processes", str(processes), "--threads", str(threads),
                "--queues", QUEUE]
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=dict(os.environ), stdout=self.log, stderr=subprocess.STDOUT)

    def cpu(self) -> float:
        """CPU seconds used so far by the master and every worker process."""
        return cpu_seconds(self.proc.pid, children=True)

    def stop(self) -> None:
        """SIGTERM, as a deploy would; the workers finish or requeue what they hold."""
        stop_process(self.proc)
        self.log.close()
