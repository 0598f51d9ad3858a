"""WhatsApp's status webhook over HTTP: signed deliveries confirm our sends by their reference; others are refused."""

from __future__ import annotations

import hashlib
import hmac
import json

from cep_automation.plugins.whatsapp import WhatsApp
from cep_automation.records import confirmations
from cep_automation.testing.fake_whatsapp import FakeWhatsApp

PATH = "/webhooks/whatsapp"


def signed(client, body: bytes, secret: str):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(PATH, content=body, headers={"X-Hub-Signature-256": signature,
                                                    "Content-Type": "application/json"})


def status_delivery(reference: str | None, wamid: str = "wamid.HBgLNTU1", status: str = "sent") -> bytes:
    entry = {"id": wamid, "status": status, "timestamp": "1759914567", "recipient_id": "34600123456"}
    if reference:
        entry["biz_opaque_callback_data"] = reference
    return (b'{"object":"whatsapp_business_account","entry":[{"id":"1022","changes":[{"field":"messages","value":'
            b'{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"statuses":['
            + json.dumps(entry).encode() + b"]}}]}]}")


def test_a_signed_status_confirms_our_send(server, anonymous, secrets, settings_for):
    answer = signed(anonymous, status_delivery("lead.created:42:whatsapp_lead"), secrets.app_secret)
    assert answer.status_code == 200 and answer.json() == {"statuses": 1, "confirmed": 1}
    assert confirmations.confirmed("whatsapp", "lead.created:42:whatsapp_lead")["provider_id"] == "wamid.HBgLNTU1"
    # and the WhatsApp integration reads it
    assert WhatsApp(settings_for()).confirmed("lead.created:42:whatsapp_lead") == "wamid.HBgLNTU1"


def test_statuses_repeat_and_come_in_any_order(server, anonymous, secrets):
    for status in ("delivered", "sent", "read"):
        assert signed(anonymous, status_delivery("ref-1", status=status), secrets.app_secret).status_code == 200
    assert confirmations.confirmed("whatsapp", "ref-1")["provider_id"] == "wamid.HBgLNTU1"


def test_a_status_without_our_reference_confirms_nothing(server, anonymous, secrets):
    assert signed(anonymous, status_delivery(None), secrets.app_secret).json() == {"statuses": 1, "confirmed": 0}


def test_unsigned_or_badly_signed_deliveries_are_refused(server, anonymous):
    body = status_delivery("ref-2")
    assert anonymous.post(PATH, content=body).status_code == 403
    assert signed(anonymous, body, "not-the-secret").status_code == 403
    assert confirmations.confirmed("whatsapp", "ref-2") is None


def test_the_handshake_answers_the_challenge(server, anonymous, secrets):
    answer = anonymous.get(PATH, params={"hub.mode": "subscribe", "hub.verify_token": secrets.verify,
                                         "hub.challenge": "1158201444"})
    assert answer.status_code == 200 and answer.text == "1158201444"


def test_the_fake_whatsapp_posts_signed_statuses_that_the_service_accepts(server, secrets, redis_client):
    # The fake speaks the contract our endpoint implements: a send with a reference comes back confirmed
    import httpx

    from cep_automation.testing import wait_for

    with FakeWhatsApp() as fake:
        fake.send_statuses_to(server.url + PATH, secrets.app_secret, delay_s=0)
        httpx.post(f"{fake.base_url}/{fake.phone_number_id}/messages", headers={"Authorization": "Bearer test-token"},
                   json={"messaging_product": "whatsapp", "recipient_type": "individual", "to": "34600123456",
                         "type": "template", "template": {"name": "x", "language": {"code": "es"}},
                         "biz_opaque_callback_data": "ref-3"})
        wait_for(lambda: fake.statuses_delivered == 1, timeout=10, what="the status webhook")
    assert confirmations.confirmed("whatsapp", "ref-3")["provider_id"] == fake.messages[0]["id"]
