"""GET /v1/jobs/{message_id}?wait=SECONDS: answers when the job ends, or its state when the wait is over."""

from __future__ import annotations

import threading

from cep_automation.records import job_state


def test_wait_returns_the_end_of_a_job_that_ends_meanwhile(client, redis_client):
    # Given a job that is running
    job_state.record("wait-job-1", "active", actor="stats.rollup", queue="stats", attempt=1)
    job_state.writer.flush()
    answers = []
    caller = threading.Thread(target=lambda: answers.append(client.get("/v1/jobs/wait-job-1?wait=30")))
    # When a caller waits for it and the job then completes
    caller.start()
    job_state.record("wait-job-1", "completed", result={"rows": 3}, progress=100)
    job_state.writer.flush()
    caller.join(timeout=40)
    # Then the caller gets the completed job
    (answer,) = answers
    assert answer.status_code == 200 and answer.json()["state"] == "completed"
    assert answer.json()["result"] == {"rows": 3}


def test_a_wait_that_runs_out_answers_the_current_state(client, redis_client):
    job_state.record("wait-job-2", "active", actor="stats.rollup", queue="stats", attempt=1)
    job_state.writer.flush()
    answer = client.get("/v1/jobs/wait-job-2?wait=0.3")
    assert answer.status_code == 200 and answer.json()["state"] == "active"


def test_wait_on_a_real_job(client, stub_broker, stub_worker, db):
    sent = client.post("/v1/jobs/stats.rollup", json={"date": "2026-11-10", "granularity": "daily"}).json()
    answer = client.get(f"/v1/jobs/{sent['message_id']}", params={"wait": "30"})
    assert answer.json()["state"] == "completed"


def test_bad_waits_and_unknown_jobs(client, redis_client):
    assert client.get("/v1/jobs/wait-job-3?wait=soon").status_code == 422
    assert client.get("/v1/jobs/wait-job-3?wait=-1").status_code == 422
    assert client.get("/v1/jobs/wait-job-3?wait=nan").status_code == 422
    assert client.get("/v1/jobs/wait-job-3?wait=0.2").status_code == 404
