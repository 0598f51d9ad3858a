"""Stale ticks: only a tick's late *first* delivery is skipped, visibly; retries and operators' retries run."""

from __future__ import annotations

import pendulum

from cep_automation.actors import stats_rollup
from cep_automation.records import dead_letters, job_state, metrics
from cep_automation.records.dead_letters import DeadLetter
from cep_automation.runtime.enqueue import retry_dead_letter


def ago(seconds: int) -> str:
    return pendulum.now("UTC").subtract(seconds=seconds).replace(microsecond=0).isoformat()


def stale_count() -> float:
    # prometheus_client is imported only through the metrics record, which sets up multiprocess mode first
    for line in metrics.render()[0].decode().splitlines():
        if line.startswith("job_stale_ticks_total{") and 'job_name="stats.rollup"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def audit_of(db, message_id):
    return db.execute("SELECT status, metadata FROM audit_log WHERE message_id = %s ORDER BY id",
                      (message_id,)).fetchall()


def run(stub_broker, stub_worker, message):
    stub_broker.enqueue(message)
    stub_broker.join("stats", fail_fast=False)
    stub_worker.join()


def test_a_late_first_delivery_is_skipped_and_says_so(db, stub_broker, stub_worker, flush_audit, caplog):
    before = stale_count()
    # Given a tick whose first delivery comes ten minutes late (a deploy that lasted past the tick)
    message = stats_rollup.message_with_options(scheduled_at=ago(600))
    run(stub_broker, stub_worker, message)
    # Then it is skipped, with a warning, an audit row that says why, and the counter
    assert job_state.get_job(message.message_id).state == "skipped"
    flush_audit()
    (row,) = audit_of(db, message.message_id)
    assert row["status"] == "skipped" and "stale tick" in row["metadata"]["reason"]
    assert "came 600 s late" in caplog.text or "s late, over 300 s" in caplog.text
    assert stale_count() == before + 1


def test_a_late_retry_of_a_tick_runs(db, stub_broker, stub_worker, flush_audit):
    # Given the retry of a tick (after a long Retry-After, or the backup lock's wait), long after the tick
    message = stats_rollup.message_with_options(scheduled_at=ago(3600), retries=1)
    run(stub_broker, stub_worker, message)
    # Then it runs
    assert job_state.get_job(message.message_id).state == "completed"
    flush_audit()
    assert [r["status"] for r in audit_of(db, message.message_id)] == ["completed"]


def test_a_tick_on_time_runs(db, stub_broker, stub_worker):
    message = stats_rollup.message_with_options(scheduled_at=ago(5))
    run(stub_broker, stub_worker, message)
    assert job_state.get_job(message.message_id).state == "completed"


def test_retrying_a_dead_scheduled_job_runs_it(db, stub_broker, stub_worker):
    # Given a stats.rollup tick of yesterday that ended in the dead letters
    tick = ago(86_400)
    dead_id = "dead-tick-1"
    dead_letters.record(db, DeadLetter(
        queue="stats", actor="stats.rollup", message_id=dead_id, payload={"args": [], "kwargs": {}},
        options={"scheduled_at": tick, "idempotency_key": f"stats.rollup@{tick}", "retries": 2},
        error_type="TransientError", error_message="database busy", traceback="", attempts=3))
    letter_id = db.execute("SELECT id FROM dead_letters WHERE message_id = %s", (dead_id,)).fetchone()["id"]
    # When an operator retries it
    new_id = retry_dead_letter(db, letter_id)
    stub_broker.join("stats", fail_fast=False)
    stub_worker.join()
    # Then the retry really runs (it is not skipped as a stale tick) and the letter links to it
    assert new_id != dead_id
    assert job_state.get_job(new_id).state == "completed"
    assert dead_letters.get_letter(db, letter_id)["retried_message_id"] == new_id
