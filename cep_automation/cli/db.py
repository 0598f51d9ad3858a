"""``cep-automation db``: database migrations."""

from __future__ import annotations

import click
import psycopg

from cep_automation.db import migrator as migrate_module
from cep_automation.db.pool import check_database
from cep_automation.settings import get_settings


@click.group()
def db() -> None:
    """Database schema management."""


@db.command()
def migrate() -> None:
    """Apply pending migrations (idempotent; safe to run from two processes at once)."""
    check_database()
    applied = migrate_module.migrate(get_settings().database_url)
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")


@db.command()
def status() -> None:
    """List applied and pending migrations."""
    check_database()
    with psycopg.connect(get_settings().database_url, autocommit=True) as conn:
        applied = migrate_module.applied_migrations(conn)
        pending = {m.version for m in migrate_module.pending_migrations(conn)}
    for migration in migrate_module.available_migrations():
        state = "pending" if migration.version in pending else "applied"
        click.echo(f"{migration.version}_{migration.name}\t{state}")
    unknown = set(applied) - {m.version for m in migrate_module.available_migrations()}
    for version in sorted(unknown):
        click.echo(f"{version}\tapplied, but unknown to this version of cep_automation")
