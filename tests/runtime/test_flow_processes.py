"""Flow control through real processes: the CLI, a Dramatiq worker on the real Redis broker, PostgreSQL.

A job held for later survives a Redis flush and still runs; dead letters of transient errors are retried
by ``dead_letters.auto_retry`` and run again, permanent ones are not; every bad input is one line, exit 2.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from psycopg.types.json import Jsonb

from cep_automation.records import job_state, scheduled_jobs
from cep_automation.testing import CLI, wait_for

pytestmark = pytest.mark.slow


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def completed(message_id: str) -> bool:
    info = job_state.get_job(message_id)
    return info is not None and info.state == "completed"


def test_a_held_job_survives_a_redis_flush_and_runs_when_released(cep_services, process_env, db, redis_client,
                                                                  start_worker):
    # Given a job held in PostgreSQL (everything delayed is held: CEP_SCHEDULE_HOLD_AFTER_S=0), due in 2 s
    env = process_env(CEP_SCHEDULE_HOLD_AFTER_S="0")
    sent = cli(env, "enqueue", "stats.rollup", "granularity=daily", "--delay", "2")
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()
    assert "held until" in sent.stderr and scheduled_jobs.get(db, message_id)["status"] == "scheduled"
    # When Redis loses everything, then a worker comes up and the releaser runs
    cep_services.flush_redis()
    start_worker("leads", "stats")
    assert cli(env, "enqueue", "schedules.release").returncode == 0
    # Then the job runs, under the id its caller was given
    wait_for(lambda: completed(message_id), timeout=90, what=f"held job {message_id} to complete")
    assert scheduled_jobs.get(db, message_id)["status"] == "released"


def test_a_cancelled_job_is_never_released(process_env, db, redis_client):
    env = process_env()
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    message_id = cli(env, "enqueue", "stats.rollup", "--run-at", due).stdout.strip()
    listed = cli(env, "jobs", "scheduled")
    assert message_id in listed.stdout
    assert cli(env, "jobs", "show", message_id).stdout.startswith(f"{message_id}  stats.rollup  queue=stats"
                                                                  "  state=scheduled")
    assert cli(env, "jobs", "cancel", message_id).stdout.strip() == f"cancelled {message_id}"
    again = cli(env, "jobs", "cancel", message_id)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"error: scheduled job {message_id!r} cannot be cancelled: it is already cancelled")
    db.execute("UPDATE scheduled_jobs SET run_at = now()")
    assert cli(env, "enqueue", "schedules.release").returncode == 0
    assert scheduled_jobs.get(db, message_id)["status"] == "cancelled"


@pytest.mark.parametrize(("args", "says"), [
    (("enqueue", "stats.rollup", "--run-at", "tomorrow 9am"), "is not an ISO 8601 date and time"),
    (("enqueue", "stats.rollup", "--run-at", "2026-12-07T09:00:00"), "has no time zone"),
    (("enqueue", "stats.rollup", "--delay", "-5"), "--delay must be zero or more seconds"),
    (("enqueue", "stats.rollup", "--delay", "soon"), "--delay 'soon' is not a number of seconds"),
    (("enqueue", "stats.rollup", "--delay", "5", "--run-at", "2026-12-07T09:00:00Z"), "not run_at and delay"),
    (("enqueue", "no.such.job", "--delay", "5"), "unknown job 'no.such.job'"),
    (("jobs", "cancel", "no-such-id"), "no scheduled job 'no-such-id'"),
    (("enqueue", "stats.rollup", "granularity=" + "x" * 3000), "over the 2048-byte limit (CEP_MAX_PAYLOAD_BYTES)"),
])
def test_bad_input_is_one_line_and_exit_2(process_env, db, redis_client, args, says):
    result = cli(process_env(CEP_MAX_PAYLOAD_BYTES="2048"), *args)
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def test_a_full_queue_refuses_the_cli_naming_queue_and_depth(process_env, redis_client):
    env = process_env(CEP_QUEUE_LIMITS="stats=1/2", CEP_QUEUE_DEPTH_CACHE_MS="0")
    first = [cli(env, "enqueue", "stats.rollup") for _ in range(2)]
    assert [r.returncode for r in first] == [0, 0] and "past its soft limit" in first[1].stderr
    full = cli(env, "enqueue", "stats.rollup")
    assert full.returncode == 2
    assert full.stderr.strip().startswith("error: queue 'stats' is full: 2 jobs waiting (hard limit 2)")


def dead_letter(db, error_type: str) -> int:
    return db.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message, traceback,"
        " attempts, failed_at) VALUES ('stats', 'stats.rollup', gen_random_uuid()::text, %s, '{}', %s,"
        " 'provider answered 503', '', 3, now() - interval '30 minutes') RETURNING id",
        (Jsonb({"args": [], "kwargs": {"granularity": "daily"}}), error_type)).fetchone()["id"]


def test_transient_dead_letters_are_retried_by_a_worker_and_permanent_ones_are_not(process_env, db, redis_client,
                                                                                     start_worker):
    # Given a dead letter of a 503 (transient) and one of a permanent error, both 30 minutes old
    transient, permanent = dead_letter(db, "TransientError"), dead_letter(db, "PermanentError")
    env = process_env()
    start_worker("leads", "stats")
    # When the periodic job runs on a worker
    assert cli(env, "enqueue", "dead_letters.auto_retry").returncode == 0
    retried = wait_for(lambda: db.execute("SELECT retried_message_id FROM dead_letters WHERE id = %s AND"
                                          " status = 'retried'", (transient,)).fetchone(), timeout=90,
                       what="the transient dead letter to be retried")
    # Then the retry runs to completion; the permanent letter is still dead
    wait_for(lambda: completed(retried["retried_message_id"]), timeout=90, what="the retry to complete")
    assert db.execute("SELECT status FROM dead_letters WHERE id = %s", (permanent,)).fetchone()["status"] == "dead"
    # And the dead-letter views say who retried it
    listed = cli(env, "dlq", "list", "--status", "retried").stdout
    assert f"{transient}\t" in listed and "retried (auto)" in listed and "auto-retries=" not in listed
    shown = cli(env, "dlq", "show", str(transient)).stdout
    assert "retried_by: auto" in shown and f"by auto as {retried['retried_message_id']}" in shown
