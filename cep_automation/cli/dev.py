"""``cep-automation dev``: the whole system on one machine that has nothing but Python.

``REDIS_URL``/``DATABASE_URL`` are used when set (environment or ``.env``); each one that is
not gets an embedded server under ``--data-dir``. Then the database is migrated, demo data is
loaded on request, and the three worker pools and the scheduler run as supervised children,
each logging to ``<data-dir>/logs/<name>.log``. While it runs, ``<data-dir>/dev.json`` holds
the URLs (without passwords) and pids; a clean stop removes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import click
import psycopg
from dotenv import dotenv_values

from cep_automation.cli.run import preflight, worker_argv
from cep_automation.db import migrate
from cep_automation.dev import embedded
from cep_automation.dev.demo import DAYS, DEFAULT_SEED, load_demo
from cep_automation.dev.demo_figures import load_figures
from cep_automation.queues import POOLS
from cep_automation.settings import Settings, get_settings

STOP_TIMEOUT_S = 15.0
STATE_FILE = "dev.json"
CLI = [sys.executable, "-c", "from cep_automation.cli import main; main()"]


def configured(name: str) -> str:
    """A setting from the environment, else from ``./.env`` as pydantic-settings reads it; '' if unset."""
    return os.environ.get(name) or dotenv_values(".env").get(name) or ""


def public_url(url: str) -> str:
    """``url`` without its password: the banner and the state file are not secret."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}").geturl()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    """Everything ``dev`` started, so that all of it is stopped whatever happens."""

    data_dir: Path
    servers: dict[str, Any] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    demo: Any = None  # DemoServices with --demo

    def start_services(self) -> None:
        """An embedded server for each of REDIS_URL and DATABASE_URL that is not configured."""
        if not configured("REDIS_URL"):
            # Redis runs in its own session, so Ctrl-C reaches the workers, not Redis; stop() ends it last.
            self.servers["Redis"] = embedded.start_redis(self.data_dir / "redis")
            os.environ["REDIS_URL"] = self.servers["Redis"].url
        if not configured("DATABASE_URL"):
            self.servers["PostgreSQL"] = postgres = embedded.start_postgres(self.data_dir / "postgres")
            os.environ.update(DATABASE_URL=postgres.url, CEP_PG_BIN_DIR=str(postgres.bin_dir))

    def launch(self, name: str, argv: list[str], metrics_port: int) -> None:
        log = self.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CEP_METRICS_PORT": str(metrics_port)}
        with log.open("ab") as out:
            # Own session: Ctrl-C in the terminal reaches only ``dev``, which stops children before servers.
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.children.append(Child(name, process, log))

    def stop(self) -> None:
        """Children first (SIGTERM, SIGKILL after STOP_TIMEOUT_S), then the servers they were using."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            try:
                child.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                click.echo(f"{child.name} did not stop within {STOP_TIMEOUT_S:g} s; killing it", err=True)
            # Whatever is left of its session, e.g. Dramatiq worker processes orphaned by a killed parent.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        if self.demo is not None:
            self.demo.stop()
        for server in reversed(self.servers.values()):
            server.stop()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)


class StopSignals:
    """SIGINT/SIGTERM/SIGHUP handler: interrupts start-up, and once running asks the supervisor to stop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.running = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        if not self.running:
            raise KeyboardInterrupt


def prepare(demo: bool) -> dict[str, int] | None:
    """Validate settings against the (possibly embedded) services, migrate, and load demo data."""
    get_settings.cache_clear()
    settings = get_settings()
    if settings.effective_broker_url.startswith("stub://"):
        raise click.UsageError("BROKER_URL=stub:// cannot reach worker processes; unset it for `dev`")
    preflight()
    migrate(settings.database_url)
    if not demo:
        return None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        loaded = load_demo(conn)
        load_figures(conn, DEFAULT_SEED, DAYS, dt.datetime.now(dt.UTC))  # what the stats and history pages draw
        return loaded


def start_http(stack: Stack, port: int) -> str | None:
    """The HTTP service (API, webhook, dashboard); a local token is made up when CEP_API_TOKEN is unset."""
    if not port:
        return None
    if not configured("CEP_API_TOKEN"):
        os.environ["CEP_API_TOKEN"] = secrets.token_urlsafe(18)
    stack.launch("http", [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], 0)
    return (f"http://127.0.0.1:{port}/admin/ (basic auth, any user, password = CEP_API_TOKEN: "
            f"{os.environ['CEP_API_TOKEN']}); /health, /v1/jobs, /metrics")


def start_children(stack: Stack, settings: Settings, scheduler: bool) -> None:
    """One process per pool and the scheduler; each pool gets its own /metrics port (0 stays 0)."""
    base = settings.cep_metrics_port
    for index, pool in enumerate(POOLS):  # automation, llm, backup
        stack.launch(f"worker-{pool}", worker_argv(pool, processes=1, threads=None), base + index if base else 0)
    if scheduler:
        stack.launch("scheduler", [*CLI, "scheduler"], 0)


def start_demo_services(stack: Stack) -> None:
    """Fakes of every third-party API (and S3 when available), before the children inherit the settings."""
    from cep_automation.dev.demo_services import DemoServices

    with psycopg.connect(get_settings().database_url, autocommit=True) as conn:
        stack.demo = DemoServices(stack.data_dir).start(conn, configured)
    get_settings.cache_clear()


def enqueue_demo_jobs(stack: Stack) -> str:
    """One of each job, so every job has something to show: the banner lists their message ids."""
    from cep_automation import actors
    from cep_automation.dev.demo_services import add_demo_upload

    with psycopg.connect(get_settings().database_url, autocommit=True) as conn:
        leads = [row[0] for row in conn.execute(
            "SELECT id::text FROM leads WHERE consent_at IS NOT NULL ORDER BY created_at DESC LIMIT 5")]
        upload = add_demo_upload(conn, stack.data_dir)
    plan = [("stats.rollup", {}), ("campaign.sync", {}), ("llm.ingest", {"upload_id": upload}),
            ("backup.daily", {}), *[("lead.created", {"lead_id": lead}) for lead in leads]]
    sent = [f"{name} {actors.broker.get_actor(name).send(**payload).message_id}" for name, payload in plan]
    return "queued (see `cep-automation jobs show ID`):\n" + "\n".join(f"{'':<14}{line}" for line in sent)


def write_state(stack: Stack, settings: Settings) -> Path:
    path = stack.data_dir / STATE_FILE
    path.write_text(json.dumps({
        "pid": os.getpid(),
        "redis_url": public_url(settings.redis_url),
        "database_url": public_url(settings.database_url),
        "namespace": settings.cep_namespace,
        "embedded": list(stack.servers),
        "processes": {child.name: child.process.pid for child in stack.children},
        "logs": str(stack.data_dir / "logs"),
    }, indent=2))
    return path


def banner(stack: Stack, settings: Settings, loaded: dict[str, int] | None, queued: str | None,
           http: str | None = None) -> str:
    lines = ["cep-automation dev is running"]
    if http:
        lines.append(f"  {'Dashboard:':<12}{http}")
    for name, url, variable in (("Redis", settings.redis_url, "REDIS_URL"),
                                ("PostgreSQL", settings.database_url, "DATABASE_URL")):
        origin = f"embedded, files in {stack.data_dir}" if name in stack.servers else f"from {variable}"
        lines.append(f"  {name + ':':<12}{public_url(url)}  ({origin})")
    lines.append(f"  {'Namespace:':<12}{settings.cep_namespace}")
    if loaded is not None:
        lines.append(f"  {'Demo data:':<12}added " + ", ".join(f"{n} {table}" for table, n in loaded.items()))
    if stack.demo is not None:
        lines.append(f"  {'Services:':<12}{stack.demo.describe()}")
    if queued:
        lines.append(f"  {'':<12}{queued}")
    for child in stack.children:
        pool = POOLS.get(child.name.removeprefix("worker-"))
        what = f"queues {', '.join(pool.queues)}" if pool else ("periodiq, UTC" if child.name == "scheduler"
                                                                 else "HTTP service")
        lines.append(f"  {child.name:<18} pid {child.process.pid:<8} {what:<34} log {child.log}")
    lines.append(f"  State file: {stack.data_dir / STATE_FILE}")
    return "\n".join([*lines, "Press Ctrl-C to stop."])


def supervise(stack: Stack, stop: threading.Event) -> int:
    """Wait for Ctrl-C, SIGTERM or SIGHUP (exit code 0) or for a child to die on its own (exit code 1)."""
    while not stop.wait(0.5):
        for child in stack.children:
            code = child.process.poll()
            if code is not None:
                tail = child.log.read_text(errors="replace").splitlines()[-15:]
                click.echo(f"error: {child.name} (pid {child.process.pid}) exited unexpectedly with code {code}; "
                           f"stopping everything. Last lines of {child.log}:\n" + "\n".join(tail), err=True)
                return 1
    click.echo("stopping…", err=True)
    return 0


@click.command()
@click.option("--demo", is_flag=True,
              help="Load demo data (idempotent), fake the third-party APIs locally and queue one of each job.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: configured("CEP_DATA_DIR") or ".data", show_default="$CEP_DATA_DIR or .data",
              help="Embedded servers' files, children's logs and dev.json.")
@click.option("--no-scheduler", is_flag=True, help="Do not start the periodiq scheduler.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=lambda: int(configured("CEP_HTTP_PORT") or 8000),
              show_default="$CEP_HTTP_PORT or 8000", help="Port of the HTTP service and dashboard (0: none).")
def dev(demo: bool, data_dir: Path, no_scheduler: bool, http_port: int) -> None:
    """Run Redis and PostgreSQL (embedded unless REDIS_URL/DATABASE_URL are set), the worker pools and the scheduler."""
    stack, signals = Stack(data_dir.resolve()), StopSignals()
    previous = {sig: signal.signal(sig, signals) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = 1
    try:
        stack.start_services()
        loaded = prepare(demo)
        if demo:
            start_demo_services(stack)
        start_children(stack, get_settings(), not no_scheduler)
        http = start_http(stack, http_port)
        queued = enqueue_demo_jobs(stack) if demo else None
        signals.running = True
        write_state(stack, get_settings())
        click.echo(banner(stack, get_settings(), loaded, queued, http))
        code = supervise(stack, signals.event)
    finally:
        signals.running = True  # a second Ctrl-C must not interrupt the shutdown
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code:
        sys.exit(code)
