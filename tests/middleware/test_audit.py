"""Audit: rows are batched off the hot path, and none is lost at shutdown, even with PostgreSQL down."""

from __future__ import annotations

import time

from cep_automation.db import close_pool
from cep_automation.records.audit import FLUSH_EVERY_S, SPOOL, AuditRow, AuditWriter
from cep_automation.settings import get_settings
from cep_automation.testing import wait_for, wake_ups


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


def test_an_idle_writer_sleeps_until_a_row_comes(db):
    # Given a running writer with nothing to write
    writer = AuditWriter()
    writer.start()
    try:
        time.sleep(2 * FLUSH_EVERY_S)  # its start-up (the spool's drain) done
        start = wake_ups(writer._thread)
        time.sleep(10 * FLUSH_EVERY_S)
        # Then it did not wake every FLUSH_EVERY_S (ten times) to find nothing
        assert wake_ups(writer._thread) - start <= 1
        # When a row comes, it is written without waiting for close
        writer.add(row(1))
        wait_for(lambda: count(db) == 1, timeout=5, what="the row to be written")
    finally:
        writer.close()


def test_rows_postgres_refused_are_written_once_it_is_back(db, monkeypatch, cep_services, caplog):
    # Given a running writer whose first batch PostgreSQL refuses
    close_pool()
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    writer = AuditWriter()
    writer.start()
    try:
        writer.add(row(1))
        wait_for(lambda: "Audit rows not written yet" in caplog.text, timeout=30,  # the pool waits 10 s
                 what="the refused batch")
        # When PostgreSQL is back, with no new row to wake the writer
        close_pool()
        monkeypatch.setenv("DATABASE_URL", cep_services.database_url)
        get_settings.cache_clear()
        # Then the kept row is written while the writer runs
        wait_for(lambda: count(db) == 1, timeout=30, what="the kept row to be written")
    finally:
        writer.close()


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
