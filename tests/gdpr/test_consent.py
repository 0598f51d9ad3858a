"""Consent lifecycle: a withdrawal recorded with date and source stops marketing at once; the marketing list
follows (unsubscribed; pending when Mailchimp holds the member in a compliance state)."""

from __future__ import annotations

from gdprkit import EMAIL, run_all

from cep_automation.actors import lead_created
from cep_automation.testing.sandbox import LIST_ID


def test_withdrawal_is_recorded_and_stops_marketing_at_once(person, db, sandbox, api, stub_broker, stub_worker):
    lead_id = person[0]
    answer = api.post(f"/v1/leads/{lead_id}/consent", json={"state": "withdrawn", "source": "unsubscribe link"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["marketing_allowed"] is False and body["sync_message_id"]
    event = db.execute("SELECT state, source, recorded_at FROM consent_events WHERE lead_id = %s",
                       (lead_id,)).fetchone()
    assert event["state"] == "withdrawn" and event["source"] == "unsubscribe link" and event["recorded_at"]

    # lead.created now skips the marketing steps (Mailchimp, the WhatsApp template) but still notifies the campus
    lead_created.send(lead_id=lead_id)
    run_all(stub_broker, stub_worker)
    assert sandbox.mailchimp.members[LIST_ID] == {}
    assert [m["template"] for m in sandbox.whatsapp.messages] == ["lead_advisor_notice"]


def test_consent_given_again_to_a_member_in_compliance_state_becomes_pending(person, db, sandbox, api, stub_broker,
                                                                             stub_worker):
    lead_id = person[0]
    lead_created.send(lead_id=lead_id)
    run_all(stub_broker, stub_worker)
    assert sandbox.mailchimp.member(LIST_ID, EMAIL)["status"] == "subscribed"
    # Withdrawn: the member is unsubscribed at Mailchimp
    api.post(f"/v1/leads/{lead_id}/consent", json={"state": "withdrawn", "source": "email reply"})
    run_all(stub_broker, stub_worker)
    assert sandbox.mailchimp.member(LIST_ID, EMAIL)["status"] == "unsubscribed"
    # Given again: Mailchimp refuses "subscribed" (Member In Compliance State); the member becomes pending,
    # which sends the double opt-in email, instead of the job failing for good
    answer = api.post(f"/v1/leads/{lead_id}/consent", json={"state": "given", "source": "web form"})
    assert answer.json()["marketing_allowed"] is True
    run_all(stub_broker, stub_worker)
    assert sandbox.mailchimp.member(LIST_ID, EMAIL)["status"] == "pending"
    sent = [r.json.get("status") for r in sandbox.mailchimp.requests if r.method in ("PUT", "PATCH")]
    assert sent == [None, "unsubscribed", "subscribed", "pending"]  # the upsert, then the three changes


def test_consent_route_errors_say_what_is_wrong(person, db, api):
    assert api.post(f"/v1/leads/{person[0]}/consent", json={"state": "maybe"}).json()["errors"] == [
        "state: must be one of given, withdrawn", "source: required, where the change came from (1 to 200 characters)"]
    assert api.post("/v1/leads/not-a-uuid/consent", json={"state": "given", "source": "x"}).status_code == 404
    unknown = "00000000-0000-0000-0000-000000000000"
    assert api.post(f"/v1/leads/{unknown}/consent", json={"state": "given", "source": "x"}).status_code == 404
    db.execute("UPDATE leads SET erased_at = now() WHERE id = %s", (person[0],))
    assert api.post(f"/v1/leads/{person[0]}/consent", json={"state": "given", "source": "x"}).status_code == 410
