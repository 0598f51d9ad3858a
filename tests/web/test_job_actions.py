"""Dashboard actions on jobs: clean completed ones older than N hours, retry a dead job from its page."""

from __future__ import annotations

import re

from psycopg.types.json import Jsonb

from cep_automation.records import job_state


def csrf_token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_clean_removes_only_completed_jobs_older_than_asked(client, redis_client):
    for message_id in ("clean-done-1", "clean-done-2"):
        job_state.record(message_id, "completed", actor="stats.rollup", queue="stats")
    job_state.record("clean-active-1", "active", actor="stats.rollup", queue="stats")
    job_state.append_log("clean-done-1", "a line")
    job_state.writer.flush()
    token = csrf_token(client.get("/admin/jobs"))
    assert client.post("/admin/jobs/clean", data={"older_than_hours": "1"}).status_code == 403  # no token
    kept = client.post("/admin/jobs/clean", data={"csrf_token": token, "older_than_hours": "1"},
                       headers={"Origin": str(client.base_url)})
    assert kept.status_code == 303 and job_state.get_job("clean-done-1") is not None
    assert "Removed 0 completed job(s)" in client.get("/admin/jobs").text
    cleaned = client.post("/admin/jobs/clean", data={"csrf_token": token, "older_than_hours": "0"},
                          headers={"Origin": str(client.base_url)})
    assert cleaned.status_code == 303
    assert "Removed 2 completed job(s)" in client.get("/admin/jobs").text
    assert job_state.get_job("clean-done-1") is None and job_state.get_job("clean-done-2") is None
    assert job_state.get_job("clean-active-1").state == "active"
    bad = client.post("/admin/jobs/clean", data={"csrf_token": token, "older_than_hours": "many"},
                      headers={"Origin": str(client.base_url)})
    assert "Not cleaned" in client.get(bad.headers["location"]).text


def test_retry_from_a_dead_jobs_page(client, db, stub_broker):
    db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message,"
               " traceback, attempts) VALUES ('stats', 'stats.rollup', 'dead-job-9', %s, '{}', 'TransientError',"
               " 'boom', '', 3)", (Jsonb({"args": [], "kwargs": {"date": "2026-11-10"}}),))
    page = client.get("/admin/jobs/dead-job-9")
    assert page.status_code == 200 and 'id="retry-job"' in page.text
    done = client.post("/admin/jobs/dead-job-9/retry", data={"csrf_token": csrf_token(page)},
                       headers={"Origin": str(client.base_url)})
    assert done.status_code == 303 and done.headers["location"] != "/admin/jobs/dead-job-9"
    assert "Retried dead-job-9 as this job." in client.get(done.headers["location"]).text
    assert stub_broker.queues["stats"].qsize() == 1
    assert 'id="retry-job"' not in client.get("/admin/jobs/dead-job-9").text
    again = client.post("/admin/jobs/dead-job-9/retry", data={"csrf_token": csrf_token(page)},
                        headers={"Origin": str(client.base_url)})
    assert "Not retried" in client.get(again.headers["location"]).text
    assert stub_broker.queues["stats"].qsize() == 1


def test_read_only_dashboard_hides_and_refuses_job_actions(db, start_app, web_settings, secrets, redis_client):
    import httpx

    server = start_app(web_settings(), read_only=True)
    with httpx.Client(base_url=server.url, auth=("ops", secrets.api), timeout=30) as http:
        assert 'action="/admin/jobs/clean"' not in http.get("/admin/jobs").text
        assert http.post("/admin/jobs/clean", data={"csrf_token": http.cookies["cep_csrf"]}).status_code == 403
