"""Leaving sequences over HTTP: a lead's status, Mailchimp's unsubscribe webhook, "BAJA" on WhatsApp; and the
lead's timeline from the API."""

from __future__ import annotations

import hashlib
import hmac
import json

import dramatiq
import pytest

from cep_automation.sequences import lifecycle
from cep_automation.testing.sequences import steps_by_name

WEBHOOK_KEY = "mc-webhook-key-5a4b"


def a_lead_in_nurture(db, *, email="ana@example.com", phone="+34 600 12 34 56"):
    lead_id = db.execute("INSERT INTO leads (name, email, phone, consent_at) VALUES ('Ana García', %s, %s, now())"
                         " RETURNING id::text", (email, phone)).fetchone()["id"]
    with db.transaction():
        assert lifecycle.enter(db, lead_id, "nurture").enrollment_id
    return lead_id


def statuses(db, lead_id):
    return {name: step["status"] for name, step in steps_by_name(db, lead_id).items()}


def test_enrolled_status_cancels_every_pending_step(client, db):
    lead_id = a_lead_in_nurture(db)
    answer = client.post(f"/v1/leads/{lead_id}/status", json={"status": "enrolled"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["steps_cancelled"] == 3
    assert set(statuses(db, lead_id).values()) == {"cancelled"}
    timeline = client.get(f"/v1/leads/{lead_id}").json()
    assert timeline["lead"]["status"] == "enrolled"
    assert timeline["sequences"][0]["status"] == "exited" and timeline["sequences"][0]["exit_cause"] == "enrolled"
    assert [s["status"] for s in timeline["steps"]] == ["cancelled"] * 3


@pytest.mark.parametrize("body, says", [({"status": "gone"}, "status: must be one of"),
                                        ({"status": "lost", "why": 1}, "why: not a field")])
def test_a_bad_status_is_refused_saying_why(client, db, body, says):
    lead_id = a_lead_in_nurture(db)
    answer = client.post(f"/v1/leads/{lead_id}/status", json=body)
    assert answer.status_code == 422 and says in json.dumps(answer.json())
    assert set(statuses(db, lead_id).values()) == {"pending"}


def test_unknown_leads_answer_404(client, db):
    assert client.post("/v1/leads/not-a-uuid/status", json={"status": "lost"}).status_code == 404
    assert client.post("/v1/leads/00000000-0000-0000-0000-000000000000/status",
                       json={"status": "lost"}).status_code == 404
    assert client.get("/v1/leads/00000000-0000-0000-0000-000000000000").status_code == 404


@pytest.fixture
def mailchimp_server(db, stub_broker, start_app, web_settings):
    return start_app(web_settings(mailchimp_webhook_secret=WEBHOOK_KEY, mailchimp_list_id="list1"))


def test_mailchimp_unsubscribe_stops_the_sequence_and_withdraws_consent(mailchimp_server, db):
    import httpx

    lead_id = a_lead_in_nurture(db, email="Ana@Example.com")
    url = f"{mailchimp_server.url}/webhooks/mailchimp"
    with httpx.Client() as http:
        assert http.get(url, params={"key": WEBHOOK_KEY}).status_code == 200  # Mailchimp's check of the URL
        assert http.post(url, params={"key": "wrong"}, data={"type": "unsubscribe"}).status_code == 403
        other_list = http.post(url, params={"key": WEBHOOK_KEY}, data={
            "type": "unsubscribe", "data[email]": "ana@example.com", "data[list_id]": "someone-elses"})
        assert other_list.json()["ignored"]
        answer = http.post(url, params={"key": WEBHOOK_KEY}, data={
            "type": "unsubscribe", "fired_at": "2026-11-30 10:00:00", "data[action]": "unsub",
            "data[email]": "ana@example.com", "data[list_id]": "list1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"type": "unsubscribe", "leads": 1, "steps_cancelled": 3}
    assert set(statuses(db, lead_id).values()) == {"cancelled"}
    lead = db.execute("SELECT consent_withdrawn_at FROM leads WHERE id = %s", (lead_id,)).fetchone()
    assert lead["consent_withdrawn_at"] is not None
    cause = db.execute("SELECT exit_cause FROM sequence_enrollments WHERE lead_id = %s", (lead_id,)).fetchone()
    assert cause["exit_cause"] == "unsubscribed"


def test_the_mailchimp_webhook_is_off_without_its_secret(server):
    import httpx

    assert httpx.post(f"{server.url}/webhooks/mailchimp", data={"type": "unsubscribe"}).status_code == 404


def inbound(text: str, sender: str = "34600123456") -> bytes:
    message = {"from": sender, "id": "wamid.IN1", "timestamp": "1764496800", "type": "text", "text": {"body": text}}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1022", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1065"},
                                       "contacts": [{"wa_id": sender}], "messages": [message]}}]}]}).encode()


def signed_post(anonymous, body: bytes, secret: str):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return anonymous.post("/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": signature,
                                                                      "Content-Type": "application/json"})


def test_baja_on_whatsapp_unsubscribes_the_sender(server, anonymous, secrets, db, stub_broker):
    lead_id = a_lead_in_nurture(db)
    other = a_lead_in_nurture(db, email="luis@example.com", phone="611000111")
    assert signed_post(anonymous, inbound("hola, ¿cuándo empieza?"), secrets.app_secret).json().get(
        "unsubscribed") is None
    assert set(statuses(db, lead_id).values()) == {"pending"}
    answer = signed_post(anonymous, inbound(" Baja. "), secrets.app_secret)
    assert answer.status_code == 200 and answer.json()["unsubscribed"] == 1 and answer.json()["steps_cancelled"] == 3
    assert set(statuses(db, lead_id).values()) == {"cancelled"}
    assert set(statuses(db, other).values()) == {"pending"}  # someone else's number: untouched
    queued = [dramatiq.Message.decode(data) for data in stub_broker.queues["leads"].queue]
    assert [(m.actor_name, m.kwargs) for m in queued] == [("consent.sync", {"lead_id": lead_id})]  # the list follows
    assert signed_post(anonymous, inbound("STOP", sender="34611000111"), secrets.app_secret).json()[
        "steps_cancelled"] == 3
    assert set(statuses(db, other).values()) == {"cancelled"}


def test_the_lead_page_shows_the_timeline_and_pauses_resumes_and_cancels(client, db):
    lead_id = a_lead_in_nurture(db)
    page = client.get(f"/admin/leads/{lead_id}")
    assert page.status_code == 200
    assert "nurture/course_details" in page.text and "due " in page.text and "ana@example.com" not in page.text
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    for action, expected in (("pause", "paused"), ("resume", "active"), ("cancel", "exited")):
        answer = client.post(f"/admin/leads/{lead_id}/{action}", data={"csrf_token": token})
        assert answer.status_code in (200, 303), answer.text
        state = db.execute("SELECT status FROM sequence_enrollments WHERE lead_id = %s", (lead_id,)).fetchone()
        assert state["status"] == expected, action
    assert set(statuses(db, lead_id).values()) == {"cancelled"}
    assert client.post(f"/admin/leads/{lead_id}/pause", data={}).status_code == 403  # no CSRF token
    assert client.get("/admin/leads/nope").status_code == 404
