"""The built-in webhook CRM against a real local receiver that checks signatures and upserts by external id."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import crm_webhook
from cep_automation.plugins.crm_webhook import WebhookCRM
from cep_automation.plugins.kinds import Contact
from cep_automation.testing.fake_crm_webhook import FakeCrmWebhook

SECRET = "shared-webhook-secret"
ANA = Contact(email="ana.garcia@example.com", first_name="Ana", last_name="García", phone="+34600123456",
              source="meta", tags=("lead", "privado"), merge_fields={"COURSE": "Marketing"}, external_id="lead-42")


@pytest.fixture
def receiver():
    with FakeCrmWebhook(secret=SECRET) as fake:
        yield fake


@pytest.fixture
def crm(receiver, settings_for):
    return WebhookCRM(settings_for(crm_webhook_url=receiver.endpoint, crm_webhook_secret=SECRET))


def test_posts_the_signed_lead_and_returns_the_receivers_id(crm, receiver):
    assert crm.upsert_lead(ANA) == "crm-1"

    sent = receiver.requests[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["x-cep-signature"] == expected
    assert sent.headers["idempotency-key"] == "lead-42"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "external_id": "lead-42", "email": "ana.garcia@example.com", "first_name": "Ana", "last_name": "García",
        "phone": "+34600123456", "source": "meta", "tags": ["lead", "privado"], "fields": {"COURSE": "Marketing"},
    }
    assert receiver.leads["lead-42"]["email"] == "ana.garcia@example.com"


def test_upsert_is_idempotent_by_external_id(crm, receiver):
    first = crm.upsert_lead(ANA)
    again = crm.upsert_lead(Contact(email="ana.nueva@example.com", first_name="Ana", external_id="lead-42"))
    other = crm.upsert_lead(Contact(email="luis@example.com", external_id="lead-43"))

    assert first == again == "crm-1" and other == "crm-2"
    assert set(receiver.leads) == {"lead-42", "lead-43"}
    assert receiver.leads["lead-42"]["email"] == "ana.nueva@example.com"


def test_wrong_secret_is_refused_by_the_receiver_and_is_permanent(receiver, settings_for):
    crm = WebhookCRM(settings_for(crm_webhook_url=receiver.endpoint, crm_webhook_secret="not-the-secret"))
    with pytest.raises(PermanentError, match="HTTP 403"):
        crm.upsert_lead(ANA)
    assert receiver.leads == {}


def test_lead_without_an_id_is_keyed_by_its_email(crm, receiver):
    key = "email-sha256-" + hashlib.sha256(b"ana.garcia@example.com").hexdigest()
    crm.upsert_lead(Contact(email=" Ana.Garcia@example.com "))
    assert list(receiver.leads) == [key]
    with pytest.raises(PermanentError, match="neither an id nor an email"):
        crm.upsert_lead(Contact(email=""))


def test_answer_without_an_id_returns_our_key(crm, receiver):
    receiver.fail_next(200, b"")
    assert crm.upsert_lead(ANA) == "lead-42"
    receiver.fail_next(202, {"status": "queued"})
    assert crm.upsert_lead(ANA) == "lead-42"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient(crm, receiver, status):
    receiver.fail_server(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        crm.upsert_lead(ANA)
    assert crm.upsert_lead(ANA) == "crm-1"  # the retry goes through


def test_429_is_transient_with_retry_after(crm, receiver):
    receiver.fail_server(429, retry_after=12)
    with pytest.raises(TransientError) as error:
        crm.upsert_lead(ANA)
    assert error.value.retry_after == 12


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_is_permanent(crm, receiver, status):
    receiver.reject(status)
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        crm.upsert_lead(ANA)


def test_timeout_is_transient(receiver, settings_for):
    crm = WebhookCRM(settings_for(crm_webhook_url=receiver.endpoint, crm_webhook_secret=SECRET), timeout=(1, 0.2))
    receiver.fail_next(201, {"id": "late"}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        crm.upsert_lead(ANA)


def test_logs_and_errors_hold_no_secret_or_personal_data(crm, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.reject(422, "lead ana.garcia@example.com rejected: phone +34600123456 unknown")
    with pytest.raises(PermanentError) as error:
        crm.upsert_lead(ANA)
    for text in (caplog.text, str(error.value)):
        assert "ana.garcia@example.com" not in text and "+34600123456" not in text and SECRET not in text
    assert "POST" in caplog.text


@pytest.mark.parametrize("values, missing", [
    ({"crm_webhook_secret": SECRET}, "CRM_WEBHOOK_URL"),
    ({"crm_webhook_url": "http://127.0.0.1:9/leads"}, "CRM_WEBHOOK_SECRET"),
])
def test_disabled_without_url_or_secret(settings_for, values, missing):
    crm = WebhookCRM(settings_for(**values))
    assert not crm.enabled
    assert crm.disabled_reason() == f"not configured: set {missing}"


def test_hook_registers_the_webhook_crm(settings_for, receiver):
    registered = []
    crm_webhook.register_integrations(register=registered.append, settings=settings_for())
    assert [(i.kind, i.name, i.enabled) for i in registered] == [("crm", "webhook", False)]
    assert "CRM_WEBHOOK_URL" in registered[0].disabled_reason()
