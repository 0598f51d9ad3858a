"""The middleware stack in a real `dramatiq` worker process on Redis and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from cep_automation.records import job_state
from cep_automation.testing import wait_for
from cep_automation.testing.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_worker(sample_env, redis_client, cep_services):
    """A worker on queue ``testing`` with the sample actors, and a plain producer broker."""
    port = free_port()
    env = sample_env(CEP_METRICS_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "dramatiq", "cep_automation.actors", "sample_actors",
                             "--processes", "1", "--threads", "4", "--queues", "testing"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    producer = RedisBroker(url=cep_services.redis_url, namespace=env["CEP_NAMESPACE"], middleware=[])
    yield proc, producer, port
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    print(proc.stdout.read())  # the worker's log, shown when the test fails


def send(producer, actor, kwargs, **options):
    message = Message(queue_name="testing", actor_name=actor, args=(), kwargs=kwargs, options=options)
    return producer.enqueue(message)


def test_stack_in_a_worker_process(db, redis_worker):
    proc, producer, port = redis_worker
    # Given: a job whose whatsapp step fails once, a redelivered duplicate of it, a job that always
    # fails permanently, a message for an unknown actor and one with an invalid payload
    good = send(producer, "testing.steps", {"item": 51, "fail": {"whatsapp": 1}}, idempotency_key="testing.steps:51")
    dup = good.copy(message_id="dup-of-51")
    producer.enqueue(dup)
    dead = send(producer, "testing.steps", {"item": 52, "fail": {"crm": 9}, "permanent": True},
                idempotency_key="testing.steps:52")
    ghost = send(producer, "lead.vanished", {"lead_id": "x"})
    invalid = send(producer, "testing.steps", {"item": "many"})

    # Then every message reaches its end state
    def ended(message_id, states):
        return (info := job_state.get_job(message_id)) is not None and info.state in states
    wait_for(lambda: ended(good.message_id, {"completed", "skipped"}) and ended(dead.message_id, {"dead"})
             and ended(invalid.message_id, {"dead"}) and ended(dup.message_id, {"skipped", "completed"}),
             timeout=60, what="all messages to finish")
    states = {job_state.get_job(good.message_id).state, job_state.get_job(dup.message_id).state}
    assert states == {"completed", "skipped"}  # whichever ran first, the other was skipped
    rows = wait_for(lambda: (found := db.execute("SELECT * FROM dead_letters").fetchall()) and len(found) == 3
                    and found, what="three dead letters")
    letters = {r["message_id"]: r for r in rows}
    assert letters[dead.message_id]["error_type"] == "PermanentError"
    assert letters[ghost.message_id]["error_type"] == "ActorNotFound"
    assert letters[invalid.message_id]["error_type"] == "PayloadError"

    # And /metrics, served by the worker's fork process, counts them
    text = wait_for(lambda: _scrape(port), timeout=20, what="/metrics")
    assert 'jobs_processed_total{queue="testing",status="completed"}' in text
    assert 'job_idempotent_skips_total{job_name="testing.steps",queue="testing"} 1.0' in text
    assert 'queue_length{queue="testing",state="dead"} 3.0' in text

    # When the worker is stopped gracefully, every audit row is written
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    statuses = [r["status"] for r in db.execute(
        "SELECT status FROM audit_log WHERE entity_id = '51' ORDER BY id")]
    assert statuses.count("completed") == 1 and "skipped" in statuses and "retried" in statuses


def _scrape(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    return text if "jobs_processed_total" in text else None
