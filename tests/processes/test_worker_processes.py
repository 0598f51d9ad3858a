"""stats.rollup end to end: CLI enqueue → real broker → `dramatiq` worker process → PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from cep_automation.records import job_state
from cep_automation.testing import CLI, wait_for
from cep_automation.testing.rabbitmq import RabbitNamespace

pytestmark = pytest.mark.slow

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def rabbitmq_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def enqueue(process_env, broker_url=None, *args: str) -> str:
    out = subprocess.run([*CLI, "enqueue", "stats.rollup", *args], env=process_env(broker_url),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def run_rollup_through(broker_url, db, process_env, start_worker):
    db.execute("INSERT INTO leads (name, created_at) VALUES ('Ana', '2026-11-10T10:00:00Z'),"
               " ('Luis', '2026-11-10T11:00:00Z')")
    worker = start_worker("stats", broker_url=broker_url)
    message_id = enqueue(process_env, broker_url, "date=2026-11-10", "granularity=daily")
    info = wait_for(lambda: (j := job_state.get_job(message_id)) and j.state == "completed" and j,
                    what="stats.rollup to complete")
    assert info.result["rollups"]["daily"]["leads"] == 2 and info.progress == 100
    total = db.execute("SELECT leads FROM lead_rollups WHERE dimension = 'total'").fetchone()
    assert total["leads"] == 2
    assert worker.poll() is None

    # A re-run through the worker gives the same rows.
    before = db.execute("SELECT * FROM lead_rollups ORDER BY dimension, key_id").fetchall()
    again = enqueue(process_env, broker_url, "date=2026-11-10", "granularity=daily")
    wait_for(lambda: (j := job_state.get_job(again)) and j.state == "completed", what="re-run")
    after = db.execute("SELECT * FROM lead_rollups ORDER BY dimension, key_id").fetchall()
    assert [(r["dimension"], r["key_id"], r["leads"]) for r in after] == \
        [(r["dimension"], r["key_id"], r["leads"]) for r in before]


def test_rollup_through_a_redis_worker(db, process_env, start_worker):
    run_rollup_through(None, db, process_env, start_worker)


@pytest.mark.rabbitmq
def test_rollup_through_a_rabbitmq_worker(db, process_env, start_worker, cep_services):
    if not rabbitmq_available():
        if os.environ.get("CI"):
            pytest.fail("RabbitMQ must run in CI (.ci/run starts it)")
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    queues = RabbitNamespace(cep_services.namespace)  # the session's namespace: <namespace>.stats …
    try:
        run_rollup_through(AMQP_URL, db, process_env, start_worker)
    finally:
        queues.close()


def test_empty_day_through_the_worker(db, process_env, start_worker):
    start_worker("stats")
    message_id = enqueue(process_env, None, "date=2025-01-01", "granularity=monthly")
    info = wait_for(lambda: (j := job_state.get_job(message_id)) and j.state == "completed" and j, what="completion")
    assert info.result["rollups"]["monthly"]["leads"] == 0
