"""GET/POST /v1/dead-letters…: the CLI's operations over JSON, behind the bearer token."""

from __future__ import annotations

import httpx
from psycopg.types.json import Jsonb


def dead_letter(db, message_id, queue="stats", actor="stats.rollup", kwargs=None):
    return db.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message, traceback,"
        " attempts) VALUES (%s, %s, %s, %s, '{}', 'TransientError', 'boom', 'Traceback…', 3) RETURNING id",
        (queue, actor, message_id, Jsonb({"args": [], "kwargs": kwargs or {"date": "2026-11-10"}})),
    ).fetchone()["id"]


def test_list_filters_and_pages_like_the_cli(client, db):
    first = dead_letter(db, "dl-api-1")
    second = dead_letter(db, "dl-api-2", queue="campaigns", actor="campaign.sync", kwargs={})
    listed = client.get("/v1/dead-letters")
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert [r["id"] for r in listed.json()["dead_letters"]] == [second, first]
    assert [r["id"] for r in client.get("/v1/dead-letters?queue=stats").json()["dead_letters"]] == [first]
    assert [r["id"] for r in client.get("/v1/dead-letters?actor=campaign.sync").json()["dead_letters"]] == [second]
    assert len(client.get("/v1/dead-letters?limit=1&offset=1").json()["dead_letters"]) == 1
    assert client.get("/v1/dead-letters?status=retried").json()["dead_letters"] == []
    assert client.get("/v1/dead-letters?status=lost").status_code == 422
    assert client.get("/v1/dead-letters?limit=0").status_code == 422


def test_show_has_payload_and_traceback_and_404_for_unknown(client, db):
    letter = dead_letter(db, "dl-api-3")
    shown = client.get(f"/v1/dead-letters/{letter}").json()
    assert shown["payload"] == {"args": [], "kwargs": {"date": "2026-11-10"}} and shown["traceback"] == "Traceback…"
    assert isinstance(shown["failed_at"], str)
    missing = client.get("/v1/dead-letters/999999")
    assert missing.status_code == 404 and missing.json()["error"] == "no dead letter with id 999999"


def test_retry_enqueues_once_and_links_the_new_message(client, db, stub_broker):
    letter = dead_letter(db, "dl-api-4")
    retried = client.post(f"/v1/dead-letters/{letter}/retry")
    assert retried.status_code == 202, retried.text
    message_id = retried.json()["message_id"]
    assert retried.headers["location"] == f"/v1/jobs/{message_id}"
    assert stub_broker.queues["stats"].qsize() == 1
    shown = client.get(f"/v1/dead-letters/{letter}").json()
    assert shown["status"] == "retried" and shown["retried_message_id"] == message_id
    again = client.post(f"/v1/dead-letters/{letter}/retry")
    assert again.status_code == 409 and "already retried" in again.json()["error"]
    assert client.post("/v1/dead-letters/999999/retry").status_code == 404


def test_discard_needs_a_reason_and_keeps_it(client, db):
    letter = dead_letter(db, "dl-api-5")
    assert client.post(f"/v1/dead-letters/{letter}/discard", json={}).status_code == 422
    assert client.post(f"/v1/dead-letters/{letter}/discard", json={"reason": "  "}).status_code == 422
    done = client.post(f"/v1/dead-letters/{letter}/discard", json={"reason": "test data"})
    assert done.status_code == 200 and done.json()["status"] == "discarded"
    shown = client.get(f"/v1/dead-letters/{letter}").json()
    assert shown["status"] == "discarded" and shown["discard_reason"] == "test data"
    assert client.post(f"/v1/dead-letters/{letter}/retry").status_code == 409


def test_the_routes_want_the_token(anonymous, db):
    letter = dead_letter(db, "dl-api-6")
    for method, path in (("GET", "/v1/dead-letters"), ("GET", f"/v1/dead-letters/{letter}"),
                         ("POST", f"/v1/dead-letters/{letter}/retry"), ("POST", f"/v1/dead-letters/{letter}/discard")):
        assert anonymous.request(method, path).status_code == 401, path
    assert isinstance(anonymous, httpx.Client)
