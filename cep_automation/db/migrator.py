"""Versioned SQL migrations, applied in order and recorded in ``schema_migrations``.

Safe to run from several processes at once: the whole run holds a PostgreSQL advisory lock,
so the second process waits and then finds nothing left to apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from cep_automation.errors import MigrationError

# Any constant works; it only has to be the same in every process.
ADVISORY_LOCK_ID = 0x0CE9_A070

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One ``NNNN_name.sql`` file."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration shipped in the package, by version."""
    folder = resources.files("cep_automation.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(version, name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def applied_migrations(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Version → checksum of what the database already has."""
    conn.execute(CREATE_TABLE)
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {_get(row, 0, "version"): _get(row, 1, "checksum") for row in rows}


def pending_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Migrations not yet applied; raises if an applied file was edited afterwards."""
    applied = applied_migrations(conn)
    pending = []
    for migration in available_migrations():
        checksum = applied.get(migration.version)
        if checksum is None:
            pending.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} was changed after it was applied; "
                "add a new migration instead of editing an old one"
            )
    return pending


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    done = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            for migration in pending_migrations(conn):
                _apply(conn, migration)
                done.append(f"{migration.version}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return done


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.version}_{migration.name} failed: {exc}") from exc


def _get(row: dict[str, Any] | Sequence[Any], index: int, key: str) -> str:
    """A column of a dict row or a tuple row (the caller's connection decides which)."""
    value: str = row[key] if isinstance(row, dict) else row[index]
    return value
