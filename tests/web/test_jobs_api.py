"""POST /v1/jobs/{actor} and GET /v1/jobs/{message_id} over HTTP, on the stub broker."""

from __future__ import annotations

import json
import uuid

from dramatiq import Worker

from cep_automation.records import job_state


def queued(stub_broker, queue):
    return [json.loads(m) for m in (stub_broker.queues[queue].queue)] if queue in stub_broker.queues else []


def test_enqueue_answers_the_message_and_queues_the_payload(client, stub_broker):
    response = client.post("/v1/jobs/stats.rollup", json={"date": "2026-11-10", "granularity": "daily"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["actor"] == "stats.rollup" and body["queue"] == "stats" and body["deduplicated"] is False
    assert response.headers["location"] == f"/v1/jobs/{body['message_id']}"
    (message,) = queued(stub_broker, "stats")
    assert message["message_id"] == body["message_id"]
    assert message["kwargs"] == {"date": "2026-11-10", "granularity": "daily"}


def test_empty_body_means_every_default(client, stub_broker):
    assert client.post("/v1/jobs/stats.rollup").status_code == 202
    assert queued(stub_broker, "stats")[0]["kwargs"] == {}


def test_malformed_json_is_400_and_non_objects_422(client, stub_broker):
    malformed = client.post("/v1/jobs/stats.rollup", content=b'{"date": ', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"].startswith("the body is not valid JSON")
    assert client.post("/v1/jobs/stats.rollup", content=b"NaN").status_code == 400
    not_object = client.post("/v1/jobs/stats.rollup", json=[1, 2])
    assert not_object.status_code == 422 and not_object.json()["errors"] == ["payload: got list"]
    assert queued(stub_broker, "stats") == []


def test_payload_errors_name_each_field(client, stub_broker):
    response = client.post("/v1/jobs/stats.rollup", json={"date": "yesterday", "granularity": "hourly"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid payload for stats.rollup"
    assert any(e.startswith("date: ") for e in body["errors"])
    assert any(e.startswith("granularity: ") and "daily" in e for e in body["errors"])
    unknown_field = client.post("/v1/jobs/lead.created", json={"lead_id": str(uuid.uuid4()), "extra": 1})
    assert unknown_field.status_code == 422 and "extra" in unknown_field.json()["errors"][0]
    assert queued(stub_broker, "stats") == [] and queued(stub_broker, "leads") == []


def test_unknown_actor_lists_the_known_jobs(client):
    response = client.post("/v1/jobs/lead.deleted", json={})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown job 'lead.deleted'"
    assert {"lead.created", "stats.rollup", "meta.leadgen"} <= set(response.json()["known_jobs"])


def test_idempotency_key_answers_the_first_message_again(client, stub_broker):
    headers = {"Idempotency-Key": "cms-lead-42"}
    first = client.post("/v1/jobs/stats.rollup", json={"date": "2026-11-10"}, headers=headers).json()
    second = client.post("/v1/jobs/stats.rollup", json={"date": "2026-11-10"}, headers=headers).json()
    assert first["deduplicated"] is False and second["deduplicated"] is True
    assert second["message_id"] == first["message_id"]
    assert len(queued(stub_broker, "stats")) == 1
    # The key is scoped to the job: another job with the same key is a new message.
    other = client.post("/v1/jobs/campaign.sync", json={}, headers=headers).json()
    assert other["deduplicated"] is False and other["message_id"] != first["message_id"]


def test_actor_templates_deduplicate_without_a_header(client, stub_broker):
    lead_id = str(uuid.uuid4())
    first = client.post("/v1/jobs/lead.created", json={"lead_id": lead_id}).json()
    again = client.post("/v1/jobs/lead.created", json={"lead_id": lead_id}).json()
    assert again == {**first, "deduplicated": True}


def test_bad_idempotency_key_is_400(client):
    response = client.post("/v1/jobs/stats.rollup", json={}, headers={"Idempotency-Key": "x" * 201})
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]


def test_job_status_shows_state_progress_log_and_result(client, stub_broker, db):
    message_id = client.post("/v1/jobs/stats.rollup", json={"date": "2026-11-10", "granularity": "daily"}
                             ).json()["message_id"]
    queued_state = client.get(f"/v1/jobs/{message_id}").json()
    assert queued_state["state"] == "queued" and queued_state["actor"] == "stats.rollup"
    worker = Worker(stub_broker, worker_timeout=100)  # started only now, so the job was seen queued
    worker.start()
    try:
        stub_broker.join("stats")
        worker.join()
    finally:
        worker.stop()
    job_state.get_job(message_id)  # flushes this process's state writer
    response = client.get(f"/v1/jobs/{message_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "completed" and body["progress"] == 100 and body["queue"] == "stats"
    assert any("daily rollup from 2026-11-10" in line for line in body["log"])
    assert body["result"]["date"] == "2026-11-10" and body["error"] == ""


def test_unknown_job_is_404(client):
    response = client.get("/v1/jobs/no-such-message")
    assert response.status_code == 404 and "no job 'no-such-message'" in response.json()["error"]
