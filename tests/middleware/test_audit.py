"""Audit: rows are batched off the hot path, and none is lost at shutdown, even with PostgreSQL down."""

from __future__ import annotations

from cep_automation.db import close_pool
from cep_automation.records.audit import SPOOL, AuditRow, AuditWriter
from cep_automation.settings import get_settings


def row(n: int) -> AuditRow:
    return AuditRow(action="testing.automated", actor="testing.steps", queue="testing", message_id=f"m{n}",
                    status="completed", attempt=1, duration_ms=3, entity_type="item", entity_id=str(n),
                    metadata={"steps": {"crm": {"status": "success"}}})


def count(db) -> int:
    return db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]


def test_close_writes_everything_queued(db):
    writer = AuditWriter()
    writer.start()
    for n in range(1200):  # more than two batches
        writer.add(row(n))
    writer.close()
    assert count(db) == 1200
    stored = db.execute("SELECT * FROM audit_log WHERE message_id = 'm7'").fetchone()
    assert stored["metadata"] == {"steps": {"crm": {"status": "success"}}} and stored["entity_id"] == "7"


def test_shutdown_with_postgres_down_spools_rows_and_next_writer_drains_them(db, redis_client, monkeypatch,
                                                                               cep_services):
    # Given a writer whose rows cannot be written because PostgreSQL is down at shutdown
    close_pool()
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    writer = AuditWriter()
    for n in range(5):
        writer.add(row(n))
    writer.close()
    # Then the rows wait in Redis
    assert redis_client.llen(SPOOL.key) == 5
    # When PostgreSQL is back and a new writer starts, they are written
    close_pool()
    monkeypatch.setenv("DATABASE_URL", cep_services.database_url)
    get_settings.cache_clear()
    next_writer = AuditWriter()
    next_writer.start()
    next_writer.close()
    assert count(db) == 5 and redis_client.llen(SPOOL.key) == 0


def test_worker_stop_flushes_the_audit(db, stub_broker):
    from dramatiq import Worker
    from sample_actors import noop

    from cep_automation.testing.pytest_plugin import detach_worker

    worker = Worker(stub_broker, worker_timeout=100)
    worker.start()
    messages = [noop.send() for _ in range(20)]
    stub_broker.join("testing")
    worker.join()
    worker.stop()  # graceful shutdown: the writer's last batch goes out here
    detach_worker(stub_broker, worker)  # else a queue declared by a later test gets a consumer in this dead worker
    ids = {r["message_id"] for r in db.execute("SELECT message_id FROM audit_log WHERE status = 'completed'")}
    assert {m.message_id for m in messages} <= ids
