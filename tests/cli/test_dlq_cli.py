"""`cep-automation dlq` and `jobs show` against real dead letters and job state."""

from __future__ import annotations

import json
import subprocess

import pytest
from psycopg.types.json import Jsonb

from cep_automation.testing import CLI


def cli(process_env, *args, ok=True):
    result = subprocess.run([*CLI, *args], env=process_env(), capture_output=True, text=True, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def letters(db):
    """Three dead stats.rollup messages (their payloads are valid: a retry will succeed)."""
    ids = []
    for n in range(3):
        row = db.execute(
            "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message,"
            " traceback, attempts) VALUES ('stats', 'stats.rollup', %s, %s, '{}', 'TransientError',"
            " 'database timed out', 'Traceback (most recent call last): ...', 3) RETURNING id",
            (f"msg-{n}", Jsonb({"args": [], "kwargs": {"date": "2026-11-0" + str(n + 1), "granularity": "daily"}})),
        ).fetchone()
        ids.append(row["id"])
    return ids


def test_list_show_stats(process_env, letters):
    listed = json.loads(cli(process_env, "dlq", "list", "--json").stdout)
    assert [r["id"] for r in listed] == sorted(letters, reverse=True)
    assert "TransientError: database timed out" in cli(process_env, "dlq", "list").stdout
    shown = cli(process_env, "dlq", "show", str(letters[0])).stdout
    assert "message_id: msg-0" in shown and "Traceback" in shown and '"granularity": "daily"' in shown
    stats = json.loads(cli(process_env, "dlq", "stats", "--json").stdout)
    assert stats == [{"queue": "stats", "status": "dead", "count": 3}]


def test_bulk_retry_runs_the_jobs(db, process_env, letters, start_worker):
    from cep_automation.records import job_state
    from cep_automation.testing import wait_for

    start_worker("stats")
    result = cli(process_env, "dlq", "retry", "--all", "--queue", "stats", "--json")
    retried = json.loads(result.stdout)
    assert sorted(r["id"] for r in retried) == sorted(letters)
    assert "retrying" in result.stderr  # the progress bar
    for r in retried:
        wait_for(lambda r=r: (j := job_state.get_job(r["message_id"])) and j.state == "completed", what="retried job")
    assert {r["status"] for r in db.execute("SELECT status FROM dead_letters")} == {"retried"}
    again = cli(process_env, "dlq", "retry", str(letters[0]), ok=False)
    assert again.returncode == 1 and "already retried" in again.stdout


def test_discard_and_purge(db, process_env, letters):
    missing_reason = cli(process_env, "dlq", "discard", str(letters[0]), ok=False)
    assert missing_reason.returncode == 2 and "--reason" in missing_reason.stderr
    cli(process_env, "dlq", "discard", str(letters[0]), "--reason", "duplicate lead")
    status = db.execute("SELECT status FROM dead_letters WHERE id = %s", (letters[0],)).fetchone()["status"]
    assert status == "discarded"
    db.execute("UPDATE dead_letters SET failed_at = now() - interval '10 days'")
    assert "purged 3" in cli(process_env, "dlq", "purge", "--older-than", "7").stdout


def test_show_unknown_letter(process_env, db):
    result = cli(process_env, "dlq", "show", "999999", ok=False)
    assert result.returncode == 2 and "no dead letter with id 999999" in result.stderr


def test_jobs_show_prints_state_progress_log_and_result(db, process_env, start_worker):
    from cep_automation.testing import wait_for

    start_worker("stats")
    message_id = cli(process_env, "enqueue", "stats.rollup", "date=2026-11-10", "granularity=daily").stdout.strip()
    wait_for(lambda: "state=completed" in cli(process_env, "jobs", "show", message_id).stdout, what="completion")
    shown = cli(process_env, "jobs", "show", message_id).stdout
    assert "stats.rollup" in shown and "progress=100%" in shown and "daily rollup from 2026-11-10" in shown
    assert json.loads(cli(process_env, "jobs", "show", message_id, "--json").stdout)["result"]["date"] == "2026-11-10"


def test_an_ordering_key_from_the_command_line_puts_the_job_in_its_line(process_env, redis_client):
    from cep_automation.db.redis_client import as_text
    from cep_automation.flow.ordering import line_key

    first = cli(process_env, "enqueue", "stats.rollup", "--ordering-key", "cli-order:1").stdout.strip()
    second = cli(process_env, "enqueue", "stats.rollup", "--ordering-key", "cli-order:1").stdout.strip()
    assert [as_text(m) for m in redis_client.lrange(line_key("cli-order:1"), 0, -1)] == [first, second]
