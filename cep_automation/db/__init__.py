"""PostgreSQL access: a per-process connection pool and versioned migrations."""

from __future__ import annotations

from cep_automation.db.migrator import applied_migrations, migrate, pending_migrations
from cep_automation.db.pool import check_database, close_pool, connection, get_pool

__all__ = [
    "applied_migrations",
    "check_database",
    "close_pool",
    "connection",
    "get_pool",
    "migrate",
    "pending_migrations",
]
