"""One psycopg connection pool per process, opened on first use.

Opened lazily because the Dramatiq CLI forks worker processes after importing our modules;
a pool opened before the fork would share sockets between processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from cep_automation.errors import ServiceUnavailable
from cep_automation.settings import get_settings

_lock = threading.Lock()
_pool: ConnectionPool[psycopg.Connection[DictRow]] | None = None
_pool_pid: int | None = None


def get_pool(timeout: float = 10.0) -> ConnectionPool[psycopg.Connection[DictRow]]:
    """The process's pool; raises :class:`ServiceUnavailable` if PostgreSQL does not answer."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            settings = get_settings()
            pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
                settings.database_url,
                min_size=settings.cep_db_pool_min,
                max_size=settings.cep_db_pool_max,
                kwargs={"row_factory": dict_row},  # hence Connection[DictRow]
                name="cep_automation",
                open=False,
            )
            pool.open(wait=False)
            _pool, _pool_pid = pool, os.getpid()
        return _pool


def close_pool() -> None:
    """Close the pool (at shutdown, or in tests that change DATABASE_URL)."""
    global _pool
    with _lock:
        if _pool is not None and _pool_pid == os.getpid():
            _pool.close()
        _pool = None


@contextmanager
def connection(timeout: float = 10.0) -> Iterator[psycopg.Connection[DictRow]]:
    """A pooled connection inside a transaction, committed on success, rolled back on error."""
    try:
        with get_pool().connection(timeout=timeout) as conn:
            yield conn
    except PoolTimeout:
        raise ServiceUnavailable(f"PostgreSQL did not answer within {timeout:g} s: {_where()}") from None
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(f"PostgreSQL is unreachable at {_where()}: {_first_line(exc)}") from None


def check_database(timeout: float = 3.0) -> None:
    """Raise :class:`ServiceUnavailable` unless a fresh connection answers ``SELECT 1``."""
    try:
        with psycopg.connect(get_settings().database_url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ServiceUnavailable(f"PostgreSQL is unreachable at {_where()}: {_first_line(exc)}") from None


def _where() -> str:
    """The database location without its password, for error messages."""
    info = psycopg.conninfo.conninfo_to_dict(get_settings().database_url)
    host = info.get("host") or "local socket"
    return f"{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
