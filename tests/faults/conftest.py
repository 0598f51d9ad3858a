"""Fixtures of the fault-injection suite: real worker processes on the fakes, a lead load, private servers,
and a guard that fails any test whose logs show a token, an email or a phone number.

Heavier variants are marked ``heavy`` and run only with ``CEP_HEAVY_FAULTS=1``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from faultkit import LogGuard, skip_unless_ci
from loadkit import Producer, insert_leads
from processkit import PrivatePostgres, PrivateRedis, WorkerProcess, requeue_orphans

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: a longer fault-injection variant; runs with CEP_HEAVY_FAULTS=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CEP_HEAVY_FAULTS") == "1":
        return
    skip = pytest.mark.skip(reason="heavy fault variant: set CEP_HEAVY_FAULTS=1")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def log_guard(caplog: pytest.LogCaptureFixture):
    """Fails the test if its worker logs or its own log records show a secret or unmasked personal data."""
    caplog.set_level(logging.INFO)
    guard = LogGuard()
    yield guard
    found = guard.scan(caplog)
    if found:
        pytest.fail(f"logs leak {len(found)} secret(s) or personal data: {sorted(set(found))[:10]}")


@pytest.fixture
def fault_env(process_env, sandbox, log_guard):
    """The environment of a worker process: this session's services, the fakes, no /metrics, this folder importable.

    Keyword arguments override any variable (e.g. ``REDIS_URL`` of a private Redis).
    """

    def make(**extra: str) -> dict[str, str]:
        env = process_env(**sandbox.env())
        env.update(CEP_METRICS_PORT="0", PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])))
        env.update(extra)
        log_guard.watch_env({**sandbox.env(), **extra})
        return env

    return make


@pytest.fixture
def workers(fault_env, tmp_path, log_guard):
    """Start ``dramatiq cep_automation.actors … --queues leads`` processes; all are stopped afterwards."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str] | None = None, *, threads: int = 4, modules: tuple[str, ...] = (),
              verbose: bool = False, ready: bool = True, queues: tuple[str, ...] = ("leads",)) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        log_guard.files.append(log)
        worker = WorkerProcess(env or fault_env(), log, threads=threads, modules=modules, verbose=verbose,
                               queues=queues)
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def leads(log_guard):
    """``leads(conn, count)``: insert a load of leads whose contacts the log guard then looks for."""

    def make(conn, count: int, campuses: int = 3):
        made = insert_leads(conn, count, campuses)
        log_guard.leads.extend(made)
        return made

    return make


@pytest.fixture
def producer(cep_services):
    """``producer(redis_url=None)``: a plain RedisBroker in this session's namespace (closed afterwards)."""
    made: list[Producer] = []

    def make(redis_url: str | None = None) -> Producer:
        made.append(Producer(redis_url or cep_services.redis_url, cep_services.namespace))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def janitor(cep_services):
    """``janitor(heartbeat_timeout_ms, redis_url=None)``: run Dramatiq's requeue of dead workers' messages now."""

    def run(heartbeat_timeout_ms: int, redis_url: str | None = None) -> None:
        requeue_orphans(redis_url or cep_services.redis_url, cep_services.namespace,
                        heartbeat_timeout_ms=heartbeat_timeout_ms)

    return run


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test only (append-only file on), which the test may kill and start again."""
    try:
        server = PrivateRedis(tmp_path / "redis").start()
    except LookupError as exc:
        skip_unless_ci(str(exc))
    yield server
    server.stop()


@pytest.fixture
def private_postgres():
    """A migrated PostgreSQL cluster of this test only, which the test may stop and start again."""
    from cep_automation.db.migrator import migrate

    try:
        server = PrivatePostgres().start()
    except LookupError as exc:
        skip_unless_ci(str(exc))
    migrate(server.url)
    yield server
    server.destroy()



STATUS_SECRET = "test-whatsapp-app-secret-7c1"


@pytest.fixture
def whatsapp_statuses(sandbox, cep_services):
    """Our HTTP service (in a thread) receiving the fake WhatsApp's signed status webhooks, as in production."""
    from cep_automation.settings import load_settings
    from cep_automation.web import ServerThread, create_app

    settings = load_settings(_env_file=None, redis_url=cep_services.redis_url, database_url=cep_services.database_url,
                             cep_api_token="test-api-token-statuses", meta_app_secret=STATUS_SECRET)
    server = ServerThread(create_app(settings)).start()
    sandbox.whatsapp.send_statuses_to(server.url + "/webhooks/whatsapp", STATUS_SECRET)
    yield server
    sandbox.whatsapp.status_url = None
    server.stop()
