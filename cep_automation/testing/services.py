"""Real Redis and PostgreSQL for a test session: the machine's own servers, else embedded ones.

Each session gets its own database (created, migrated, dropped) and its own Redis key
namespace, so two test runs on one machine never see each other's data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from cep_automation.db.migrator import migrate
from cep_automation.db.redis_client import check_redis
from cep_automation.dev import embedded
from cep_automation.errors import ServiceUnavailable

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


@dataclass
class TestServices:
    """What one test session uses; :meth:`env` is what a worker subprocess needs."""

    __test__ = False  # not a test class, whatever its name

    redis_url: str
    admin_url: str
    database_url: str
    database_name: str
    namespace: str
    bin_dir: Path | None = None
    _embedded: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls) -> TestServices:
        token = secrets.token_hex(4)
        scratch = Path(tempfile.gettempdir()) / f"cep-test-{token}"  # made only when a service is embedded
        started: list[Any] = []
        redis_url = os.environ.get("CEP_TEST_REDIS_URL", DEFAULT_REDIS)
        try:
            check_redis(redis_url)
        except ServiceUnavailable:
            started.append(embedded.start_redis(scratch / "redis"))
            redis_url = started[-1].url
        admin_url = os.environ.get("CEP_TEST_DATABASE_URL", DEFAULT_POSTGRES)
        bin_dir = None
        if not _postgres_answers(admin_url):
            started.append(embedded.start_postgres(scratch / "postgres"))
            admin_url, bin_dir = started[-1].url, started[-1].bin_dir
        name = f"cep_test_{os.getpid()}_{token}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        migrate(database_url)
        return cls(redis_url, admin_url, database_url, name, f"cep-test-{token}", bin_dir, started)

    def env(self, broker_url: str | None = None) -> dict[str, str]:
        """Environment variables pointing a process at this session's services."""
        values = {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "BROKER_URL": broker_url or self.redis_url,
            "CEP_NAMESPACE": self.namespace,
        }
        if self.bin_dir:
            values["CEP_PG_BIN_DIR"] = str(self.bin_dir)
        return values

    def flush_redis(self) -> None:
        """Delete every key of this session's namespace."""
        client = redis.Redis.from_url(self.redis_url)
        for name in client.scan_iter(match=f"{self.namespace}:*", count=1000):
            client.delete(name)

    def stop(self) -> None:
        self.flush_redis()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database_name)))
        for server in reversed(self._embedded):
            server.stop()
        # the worker processes' metric samples (records/metrics.py), one folder per session's namespace
        shutil.rmtree(Path(tempfile.gettempdir()) / f"cep-prometheus-{self.namespace}", ignore_errors=True)
