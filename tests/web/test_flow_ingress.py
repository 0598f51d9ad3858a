"""Flow control over HTTP, through a live `cep-automation serve` on the real Redis broker.

Backpressure answers 429 (accepted, deferred: slow down) then 503 (queue full), both with ``Retry-After``;
an oversized payload is a 413; ``?run_at=``/``?delay=``/``?debounce=`` hold a job that ``DELETE`` cancels.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from cep_automation.records import scheduled_jobs

pytestmark = pytest.mark.slow


@pytest.fixture
def api(serve_process, secrets):
    def start(**env):
        url, _log = serve_process(**env)
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secrets.api}"}, timeout=30)

    return start


def test_backpressure_answers_202_then_429_then_503_with_retry_after(api, redis_client):
    http = api(CEP_QUEUE_LIMITS="stats=2/4", CEP_QUEUE_DEPTH_CACHE_MS="0")
    answers = [http.post("/v1/jobs/stats.rollup", json={}) for _ in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 429, 429, 503]
    # 429: accepted all the same (deferred), with the message id; the caller should slow down
    slow = answers[2]
    assert slow.headers["Retry-After"] == "30" and slow.json()["message_id"] and slow.json()["deferred_s"] == 30
    # 503: refused, naming the queue and its depth
    full = answers[4]
    assert full.headers["Retry-After"] == "30"
    assert full.json()["queue"] == "stats" and full.json()["depth"] == 4 and full.json()["limit"] == 4
    assert full.json()["error"].startswith("queue 'stats' is full: 4 jobs waiting (hard limit 4)")


def test_an_oversized_payload_is_a_413_naming_the_limit(api, redis_client):
    http = api(CEP_MAX_PAYLOAD_BYTES="1024")
    answer = http.post("/v1/jobs/stats.rollup", json={"granularity": "x" * 4000})
    assert answer.status_code == 413 and answer.json()["limit"] == 1024
    assert "CEP_MAX_PAYLOAD_BYTES" in answer.json()["error"]


def test_run_at_holds_the_job_and_delete_cancels_it(api, db, redis_client):
    http = api()
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).replace(microsecond=0)
    answer = http.post("/v1/jobs/stats.rollup", params={"run_at": due.isoformat()}, json={"granularity": "daily"})
    assert answer.status_code == 202 and answer.json()["scheduled"] is True
    message_id = answer.json()["message_id"]
    assert dt.datetime.fromisoformat(answer.json()["run_at"]) == due
    shown = http.get(f"/v1/jobs/{message_id}").json()
    assert shown["state"] == "scheduled" and dt.datetime.fromisoformat(shown["run_at"]) == due
    assert http.delete(f"/v1/jobs/{message_id}").json() == {"message_id": message_id, "cancelled": True}
    assert scheduled_jobs.get(db, message_id)["status"] == "cancelled"
    again = http.delete(f"/v1/jobs/{message_id}")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    assert http.delete("/v1/jobs/no-such-job").status_code == 404


def test_delay_and_debounce_by_query_parameters(api, db, redis_client):
    http = api()
    later = http.post("/v1/jobs/stats.rollup", params={"delay": "86400"}, json={})
    assert later.status_code == 202 and later.json()["scheduled"] is True
    burst = [http.post("/v1/jobs/campaign.sync", params={"debounce": "60", "debounce_key": "campaign:1"},
                       json={"campaign_id": n}) for n in (1, 2)]
    assert [b.json()["deduplicated"] for b in burst] == [False, True]
    assert burst[0].json()["message_id"] == burst[1].json()["message_id"]


@pytest.mark.parametrize(("params", "says"), [
    ({"run_at": "next monday"}, "is not an ISO 8601 date and time"),
    ({"run_at": "2026-12-07T09:00:00"}, "has no time zone"),
    ({"delay": "-1"}, "delay must be zero or more seconds"),
    ({"debounce_key": "k"}, "debounce_key needs debounce=SECONDS"),
    ({"priority": "high"}, "priority 'high' is not a whole number from 0"),
    ({"ordering_key": ""}, "ordering_key '' must be 1 to 200 printable characters"),
    ({"ordering_key": "a", "fairness_key": "b"}, "give ordering_key or fairness_key, not both"),
])
def test_bad_timing_parameters_are_a_400_saying_what_is_wrong(api, redis_client, params, says):
    answer = api().post("/v1/jobs/stats.rollup", params=params, json={})
    assert answer.status_code == 400 and says in answer.json()["error"]


def test_a_priority_by_query_parameter_travels_with_the_job(api, redis_client):
    import json

    from cep_automation.db.redis_client import as_text

    answer = api().post("/v1/jobs/stats.rollup", params={"priority": "0"}, json={})
    assert answer.status_code == 202
    message_id = answer.json()["message_id"]
    stored = [json.loads(as_text(raw)) for name in redis_client.scan_iter(match="*:stats.msgs")
              for raw in redis_client.hvals(name)]
    assert [m["options"]["priority"] for m in stored if m["message_id"] == message_id] == [0]


def test_an_ordering_key_and_a_fairness_key_by_query_parameter(api, redis_client):
    from cep_automation.db.redis_client import as_text
    from cep_automation.flow import fairness
    from cep_automation.flow.ordering import line_key

    http = api()
    ordered = [http.post("/v1/jobs/stats.rollup", params={"ordering_key": "http-order:7"}, json={})
               for _ in range(2)]
    assert [a.status_code for a in ordered] == [202, 202]
    line = [as_text(m) for m in redis_client.lrange(line_key("http-order:7"), 0, -1)]
    assert line == [a.json()["message_id"] for a in ordered]
    fair = http.post("/v1/jobs/stats.rollup", params={"fairness_key": "uploader:3"}, json={})
    assert fair.status_code == 202 and fairness.waiting("stats") >= 1
