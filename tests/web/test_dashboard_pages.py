"""The dashboard over HTTP: pages, masking of personal data, dead-letter actions, CSRF and read-only mode."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from psycopg.types.json import Jsonb

from cep_automation.db.redis_client import key
from cep_automation.records import job_state
from cep_automation.runtime.job import JobHandle

EMAIL, PHONE, SECRET = "ana.garcia@example.com", "+34600123456", "sk-live-abcdef123456"


def dead_letter(db, message_id, kwargs):
    """A dead stats.rollup whose error and traceback carry personal data and a secret."""
    return db.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message, traceback,"
        " attempts) VALUES ('stats', 'stats.rollup', %s, %s, '{}', 'TransientError', %s, %s, 3) RETURNING id",
        (message_id, Jsonb({"args": [], "kwargs": kwargs}), f"mailchimp refused {EMAIL} / {PHONE}",
         f"Traceback (most recent call last):\n  GET https://api.example.com/?access_token={SECRET}\nError"),
    ).fetchone()["id"]


@pytest.fixture
def letter(db):
    """A dead letter that a retry will run (its payload is valid)."""
    return dead_letter(db, "dead-msg-1", {"date": "2026-11-10", "granularity": "daily"})


@pytest.fixture
def private_letter(db):
    """A dead letter with an email in its payload, which stats.rollup does not even take."""
    return dead_letter(db, "dead-msg-2", {"date": "2026-11-10", "note": EMAIL})


def csrf_token(page: httpx.Response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def assert_masked(text: str) -> None:
    assert EMAIL not in text and PHONE not in text and SECRET not in text
    assert "a***@example.com" in text


def test_pages_render_and_mask_personal_data(client, private_letter):
    listed = client.get("/admin/dead-letters")
    assert listed.status_code == 200 and f"#{private_letter}" in listed.text
    assert_masked(listed.text)
    detail = client.get(f"/admin/dead-letters/{private_letter}")
    assert detail.status_code == 200 and "Traceback" in detail.text and "access_token=***" in detail.text
    assert_masked(detail.text)
    assert "content-security-policy" in detail.headers and detail.headers["cache-control"] == "no-store"
    for path in ("/admin/", "/admin/jobs", "/admin/schedules", "/admin/workers", "/admin/flow",
                 "/admin/static/app.css"):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/dead-letters/999999").status_code == 404


def test_retry_needs_the_csrf_token_and_the_same_origin(client, letter, stub_broker):
    token = csrf_token(client.get(f"/admin/dead-letters/{letter}"))
    action = f"/admin/dead-letters/{letter}/retry"
    assert client.post(action, data={}).status_code == 403
    assert client.post(action, data={"csrf_token": "forged" * 8}).status_code == 403
    cross = client.post(action, data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "security token" in cross.text
    assert stub_broker.queues["stats"].qsize() == 0
    done = client.post(action, data={"csrf_token": token}, headers={"Origin": str(client.base_url)})
    assert done.status_code == 303 and done.headers["location"] == f"/admin/dead-letters/{letter}"
    page = client.get(done.headers["location"])
    assert "Retried as message" in page.text and 'id="retried-job"' in page.text
    assert stub_broker.queues["stats"].qsize() == 1


def test_a_retry_that_fails_says_why(client, private_letter, db):
    token = csrf_token(client.get(f"/admin/dead-letters/{private_letter}"))
    page = client.post(f"/admin/dead-letters/{private_letter}/retry", data={"csrf_token": token},
                       follow_redirects=True)
    assert "Not retried: invalid payload for stats.rollup" in page.text
    assert db.execute("SELECT status FROM dead_letters").fetchone()["status"] == "dead"


def test_discard_needs_a_reason(client, letter, db):
    token = csrf_token(client.get(f"/admin/dead-letters/{letter}"))
    refused = client.post(f"/admin/dead-letters/{letter}/discard", data={"csrf_token": token, "reason": "  "},
                          follow_redirects=True)
    assert "Not discarded: a reason is required" in refused.text
    client.post(f"/admin/dead-letters/{letter}/discard", data={"csrf_token": token, "reason": "test data"})
    row = db.execute("SELECT status, discard_reason FROM dead_letters WHERE id = %s", (letter,)).fetchone()
    assert row == {"status": "discarded", "discard_reason": "test data"}


def test_bulk_retry_of_selected_and_of_all_matching(client, db, stub_broker):
    ids = [db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload) VALUES (%s, %s, %s, %s)"
                      " RETURNING id", (queue, actor, f"bulk-{n}", Jsonb({"args": [], "kwargs": kwargs}))
                      ).fetchone()["id"]
           for n, (queue, actor, kwargs) in enumerate([("stats", "stats.rollup", {"date": "2026-11-01"}),
                                                      ("stats", "stats.rollup", {"date": "2026-11-02"}),
                                                      ("campaigns", "campaign.sync", {})])]
    token = csrf_token(client.get("/admin/dead-letters"))
    selected = client.post("/admin/dead-letters/retry", data={"csrf_token": token, "scope": "selected",
                                                              "ids": [str(ids[0])]}, follow_redirects=True)
    assert "Retried 1 dead letter(s)." in selected.text
    matching = client.post("/admin/dead-letters/retry", data={"csrf_token": token, "scope": "matching",
                                                              "queue": "campaigns", "actor": ""}, follow_redirects=True)
    assert "Retried 1 dead letter(s)." in matching.text
    statuses = {r["id"]: r["status"] for r in db.execute("SELECT id, status FROM dead_letters")}
    assert statuses == {ids[0]: "retried", ids[1]: "dead", ids[2]: "retried"}
    assert stub_broker.queues["stats"].qsize() == stub_broker.queues["campaigns"].qsize() == 1


def test_read_only_mode_hides_and_refuses_actions(db, letter, start_app, web_settings, secrets, stub_broker):
    app = start_app(web_settings(), read_only=True)
    with httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {secrets.api}"}) as http:
        page = http.get(f"/admin/dead-letters/{letter}")
        assert "read-only" in page.text and "/retry" not in page.text and "Discard" not in page.text
        refused = http.post(f"/admin/dead-letters/{letter}/retry", data={"csrf_token": http.cookies["cep_csrf"]})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert db.execute("SELECT status FROM dead_letters").fetchone()["status"] == "dead"


def test_read_only_comes_from_the_environment(monkeypatch, db, start_app, secrets):
    monkeypatch.setenv("CEP_DASHBOARD_READ_ONLY", "true")
    app = start_app()
    page = httpx.get(app.url + "/admin/", headers={"Authorization": f"Bearer {secrets.api}"})
    assert 'class="badge ro"' in page.text


def test_queue_counts_workers_and_schedules(client, db, redis_client, cep_services):
    ns = cep_services.namespace
    redis_client.rpush(f"{ns}:stats", "m1", "m2")
    now_ms = time.time() * 1000
    redis_client.zadd(f"{ns}:__heartbeats__", {"worker-fresh": now_ms - 2000, "worker-gone": now_ms - 120_000})
    redis_client.sadd(f"{ns}:__acks__.worker-fresh.stats", "m0")
    db.execute("INSERT INTO audit_log (action, actor, queue, message_id, status) VALUES"
               " ('stats.rollup', 'stats.rollup', 'stats', 'tick-1', 'completed')")
    counts = {q["queue"]: q for q in client.get("/admin/api/queues").json()["queues"]}
    assert counts["stats"] == {"queue": "stats", "waiting": 2, "active": 1, "delayed": 0, "dead": 0}
    workers = client.get("/admin/workers").text
    assert "worker-fresh" in workers and "worker-gone" not in workers
    schedules = client.get("/admin/schedules").text
    assert "0 */6 * * *" in schedules and "backup.daily" in schedules and "state-completed" in schedules


def test_jobs_list_filters_by_state_and_job_page_masks_log_lines(client, db, stub_broker, redis_client):
    job_state.record("job-active-1", "active", actor="stats.rollup", queue="stats", attempt=1)
    JobHandle("job-active-1").log(f"calling {EMAIL}")
    db.execute("INSERT INTO audit_log (action, actor, queue, message_id, status) VALUES"
               " ('lead.automated', 'lead.created', 'leads', 'job-dead-1', 'dead')")
    job_state.get_job("job-active-1")  # flush the state writer
    listed = client.get("/admin/jobs").text
    assert "job-acti" in listed and "job-dead" in listed
    active_only = client.get("/admin/jobs", params={"state": "active"}).text
    assert "job-acti" in active_only and "job-dead" not in active_only
    page = client.get("/admin/jobs", params={"id": "job-active-1"}, follow_redirects=True)
    assert page.status_code == 200 and "calling a***@example.com" in page.text and EMAIL not in page.text
    assert client.get("/admin/jobs/nope").status_code == 404
    assert redis_client.exists(key("job", "job-active-1"))


def test_the_flow_page_shows_what_waits_for_a_limit_a_turn_or_a_share(client, redis_client):
    from cep_automation.db.redis_client import get_redis
    from cep_automation.flow import concurrency, ordering

    concurrency.try_take("mailchimp", "acct-1", "holder", most=10, lease_s=30)
    get_redis().rpush(ordering.line_key("lead:42"), "m-1", "m-2", "m-3")
    page = client.get("/admin/flow")
    assert page.status_code == 200
    assert "mailchimp" in page.text and "acct-1" in page.text and "lead:42" in page.text
    assert 'aria-current="page"' in page.text and ">Flow<" in page.text


def test_the_flow_page_counts_the_jobs_held_for_later_and_lists_the_soonest(client, db):
    import datetime as dt

    from cep_automation.records import scheduled_jobs

    now = dt.datetime.now(dt.UTC)
    for n, due in enumerate((dt.timedelta(minutes=10), dt.timedelta(hours=5), dt.timedelta(days=3))):
        scheduled_jobs.hold(db, message_id=f"held-{n}", actor="stats.rollup", queue="stats",
                            payload={"args": [], "kwargs": {}}, options={}, run_at=now + due)
    page = client.get("/admin/flow")
    assert page.status_code == 200 and "Held for later" in page.text
    assert "Due within the hour: <strong>1</strong>" in page.text and "within the day: <strong>2</strong>" in page.text
    assert page.text.index("held-0") < page.text.index("held-1") < page.text.index("held-2")
    assert '<th scope="row" data-label="Queue">stats</th><td data-label="Held">3</td>' in page.text
