"""The Meta Lead Ads webhook over HTTP: handshake, signatures, and replays that create one lead."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from cep_automation.broker import find_middleware
from cep_automation.middleware import Audit
from cep_automation.runtime.integrations import reset_registry
from cep_automation.settings import get_settings
from cep_automation.testing.fake_meta import FakeMetaGraph

PAGE_TOKEN = "EAAGpageTokenForTests789"
PATH = "/webhooks/meta/leads"


@pytest.fixture
def meta_graph(monkeypatch):
    """A fake Graph API that the ads integration of this process (the actors') talks to."""
    with FakeMetaGraph(PAGE_TOKEN) as fake:
        monkeypatch.setenv("META_ACCESS_TOKEN", PAGE_TOKEN)
        monkeypatch.setenv("META_GRAPH_BASE_URL", fake.base_url)
        get_settings.cache_clear()
        reset_registry()
        yield fake
    get_settings.cache_clear()
    reset_registry()


def delivery(*leadgen_ids, numeric=False, page_id="1029384756", form_id="5556667778"):
    """A notification body as Meta sends it (api-contracts §4)."""
    def ident(value):
        return int(value) if numeric else value

    changes = [{"field": "leadgen", "value": {"leadgen_id": ident(i), "page_id": ident(page_id),
                                              "form_id": ident(form_id), "adgroup_id": ident("44"),
                                              "ad_id": ident("45"), "created_time": 1759914567}}
               for i in leadgen_ids]
    body = {"object": "page", "entry": [{"id": page_id, "time": 1759914570, "changes": changes}]}
    return json.dumps(body, ensure_ascii=False).encode()


def signed(raw: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def test_handshake_echoes_the_challenge(anonymous, secrets):
    response = anonymous.get(PATH, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                           "hub.verify_token": secrets.verify})
    assert response.status_code == 200 and response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
    {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "VERIFY"},
    {"hub.challenge": "1"},
])
def test_handshake_refuses_wrong_token_or_mode(anonymous, secrets, params):
    params = {k: secrets.verify if v == "VERIFY" else v for k, v in params.items()}
    response = anonymous.get(PATH, params=params)
    assert response.status_code == 403 and "1" != response.text


def test_bad_or_missing_signature_is_403_and_enqueues_nothing(anonymous, secrets, stub_broker):
    raw = delivery("900000000000001")
    for headers in ({}, signed(raw, "not-the-app-secret"), {"X-Hub-Signature-256": "sha256=00"},
                    {"X-Hub-Signature-256": signed(raw, secrets.app_secret)["X-Hub-Signature-256"][7:]}):
        response = anonymous.post(PATH, content=raw, headers=headers)
        assert response.status_code == 403 and "X-Hub-Signature-256" in response.json()["error"]
    # A valid signature over other bytes (the same JSON re-serialised) does not verify either.
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert anonymous.post(PATH, content=reserialised, headers=signed(raw, secrets.app_secret)).status_code == 403
    assert "leads" not in stub_broker.queues or stub_broker.queues["leads"].qsize() == 0


def test_signature_is_over_the_raw_non_ascii_bytes(anonymous, secrets, stub_broker):
    raw = delivery("900000000000002").replace(b'"object"', '"nota": "Peñíscola", "object"'.encode())
    response = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    assert response.status_code == 200 and response.json()["enqueued"] == 1


def test_signed_malformed_json_is_400(anonymous, secrets):
    raw = b'{"object": "page", "entry": ['
    assert anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret)).status_code == 400


def test_unset_app_secret_is_503(db, start_app, web_settings):
    import httpx

    app = start_app(web_settings(meta_app_secret=None))
    raw = delivery("900000000000003")
    response = httpx.post(app.url + PATH, content=raw, headers=signed(raw, "anything"))
    assert response.status_code == 503 and "META_APP_SECRET is not set" in response.json()["error"]


def test_invalid_changes_are_dropped_and_reported(anonymous, secrets, stub_broker):
    body = json.loads(delivery("900000000000004", "not-a-number"))
    body["entry"][0]["changes"].append({"field": "feed", "value": {"item": "post"}})
    raw = json.dumps(body).encode()
    response = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    assert response.json() == {"received": 2, "enqueued": 1, "duplicates": 0, "rejected": 1}


def test_replayed_delivery_creates_one_lead(anonymous, secrets, db, stub_broker, stub_worker, meta_graph):
    # Given a lead in the Graph API for a campaign we know, and two ids given as numbers (the docs' sample)
    campaign = db.execute("INSERT INTO campaigns (name, tracking_tag, meta_campaign_id) VALUES"
                          " ('Otoño', 'otono-2025', '120210000000001') RETURNING id").fetchone()["id"]
    leadgen_id = meta_graph.add_lead({"full_name": "Ana García", "email": "Ana.Garcia@Example.com",
                                      "phone_number": "+34600123456"}, campaign_id="120210000000001",
                                     form_id="5556667778")
    raw = delivery(leadgen_id, numeric=True)
    # When Meta delivers it, and delivers it again (a retry), and again after the job ran
    first = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    second = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    stub_broker.join("leads")
    stub_worker.join()
    third = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    stub_broker.join("leads")
    stub_worker.join()
    # Then one meta.leadgen ran, one lead exists, and lead.created ran for it once
    assert first.json()["enqueued"] == 1 and second.json()["duplicates"] == 1 and third.json()["duplicates"] == 1
    (lead,) = db.execute("SELECT id::text, external_id, name, email, phone, source, campaign_id, consent_at,"
                         " consent_text, created_at FROM leads").fetchall()
    assert lead["external_id"] == f"meta:{leadgen_id}" and lead["source"] == "meta"
    assert (lead["name"], lead["email"], lead["phone"]) == ("Ana García", "ana.garcia@example.com", "+34600123456")
    assert lead["campaign_id"] == campaign and lead["consent_at"] == lead["created_at"]
    assert lead["consent_at"].isoformat() == "2025-10-08T09:09:27+00:00" and "5556667778" in lead["consent_text"]
    assert len([r for r in meta_graph.requests if r.path.endswith(f"/{leadgen_id}")]) == 1
    find_middleware(stub_broker, Audit).writer.flush()
    ran = db.execute("SELECT actor, entity_id FROM audit_log WHERE status = 'completed' ORDER BY actor").fetchall()
    assert [(r["actor"], r["entity_id"]) for r in ran] == [("lead.created", lead["id"]), ("meta.leadgen", leadgen_id)]


@pytest.mark.parametrize("body", [{"object": "page", "entry": 5}, {"object": "page", "entry": [{"changes": "x"}]},
                                  {"object": "instagram", "entry": []}, [1, 2]])
def test_odd_signed_bodies_enqueue_nothing_and_still_answer_200(anonymous, secrets, body):
    raw = json.dumps(body).encode()
    response = anonymous.post(PATH, content=raw, headers=signed(raw, secrets.app_secret))
    assert response.status_code == 200 and response.json()["received"] == 0
