"""Migrations: idempotent, recorded, safe from two processes at once, edits detected."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from cep_automation.db import migrator as migrate_module
from cep_automation.errors import MigrationError


@pytest.fixture
def empty_database(cep_services):
    name = f"cep_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cep_services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = cep_services.database_url.replace(f"/{cep_services.database_name}", f"/{name}")
    yield url
    with psycopg.connect(cep_services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrate_applies_once_and_records(empty_database):
    names = [f"{m.version}_{m.name}" for m in migrate_module.available_migrations()]
    assert names[:3] == ["0001_initial", "0002_backups", "0003_leads_campaign_index"]
    assert migrate_module.migrate(empty_database) == names
    assert migrate_module.migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        lead_indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'leads'")}
    assert versions == [name.split("_")[0] for name in names]
    assert {"campuses", "courses", "course_runs", "campaigns", "leads", "uploads", "audit_log",
            "dead_letters", "effects", "lead_rollups", "campaign_metrics"} <= tables
    assert {"leads_created_at_idx", "leads_campaign_created_idx"} <= lead_indexes


def test_two_processes_migrating_at_once(empty_database):
    code = "import sys; from cep_automation.db.migrator import migrate; print(len(migrate(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, empty_database], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    count = str(len(migrate_module.available_migrations()))
    assert outputs == sorted(["0", count])  # one applied the migrations, the other found nothing left


def test_leads_campaign_index_already_built_by_hand(empty_database):
    """An operator may build the 0003 index CONCURRENTLY before the deploy (the migrator cannot: it runs each
    file in a transaction); 0003 then applies without error and the index exists once."""
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert migrate_module.applied_migrations(conn) == {}  # creates schema_migrations
        for migration in migrate_module.available_migrations()[:2]:
            migrate_module._apply(conn, migration)
        conn.execute("INSERT INTO leads (name) SELECT 'Lead ' || g FROM generate_series(1, 100) AS g")
        concurrently = "CREATE INDEX CONCURRENTLY leads_campaign_created_idx ON leads (campaign_id, created_at)"
        with pytest.raises(MigrationError, match="cannot run inside a transaction block"):
            migrate_module._apply(conn, migrate_module.Migration("9999", "concurrently", concurrently))
        conn.execute(concurrently)
    assert "0003_leads_campaign_index" in migrate_module.migrate(empty_database)
    with psycopg.connect(empty_database) as conn:
        defs = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'leads'"
                                           " AND indexdef LIKE '%(campaign_id, created_at)%'").fetchall()]
    assert len(defs) == 1 and "leads_campaign_created_idx" in defs[0]


def test_edited_migration_is_refused(empty_database, monkeypatch):
    migrate_module.migrate(empty_database)
    original = migrate_module.available_migrations()
    edited = [migrate_module.Migration(m.version, m.name, m.sql + "\n-- edited") for m in original]
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: edited)
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        migrate_module.migrate(empty_database)


def test_offer_type_is_checked(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO courses (title, offer_type) VALUES ('X', 'gratis')")


def test_purging_finished_held_jobs_reads_an_index(db):
    # The query schedules.release runs on every pass; with sequential scans off, the plan shows whether an
    # index can serve it at all (a small table is scanned whatever the indexes)
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row["QUERY PLAN"] for row in db.execute(
            "EXPLAIN DELETE FROM scheduled_jobs WHERE status <> 'scheduled' AND updated_at < now() - interval '7 days'"
        ).fetchall())
    assert "scheduled_jobs_finished_idx" in plan, plan
