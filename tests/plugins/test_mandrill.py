"""The Mandrill integration against the fake send-template API: delivery states, error names, timeouts, secrecy."""

from __future__ import annotations

import logging

import pytest
import requests

from cep_automation.dev.embedded import free_port
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import collect_integrations, mandrill
from cep_automation.plugins.mandrill import Mandrill
from cep_automation.testing.fake_mandrill import FakeMandrill

KEY = "md-Secr3tTransactionalKey"
SEND = {"template": "lead-confirmation", "to_email": "ana@example.com", "to_name": "Ana García",
        "merge_vars": {"COURSE": "Inglés A1", "CAMPUS": "Madrid"}, "metadata": {"lead_id": "42"}}


@pytest.fixture
def fake():
    with FakeMandrill(KEY, templates=("lead-confirmation",)) as server:
        yield server


@pytest.fixture
def integration(fake, settings_for):
    return Mandrill(settings_for(mailchimp_transactional_key=KEY, mandrill_base_url=fake.base_url,
                                 mandrill_from_email="info@cepformacion.es"))


def test_sent_returns_the_message_id_and_sends_the_documented_body(fake, integration):
    message_id = integration.send_template(**SEND)
    (request,) = fake.requests
    assert request.path == "/api/1.0/messages/send-template"
    assert request.json == {
        "key": KEY, "template_name": "lead-confirmation", "template_content": [],
        "message": {"from_email": "info@cepformacion.es",
                    "to": [{"email": "ana@example.com", "type": "to", "name": "Ana García"}],
                    "global_merge_vars": [{"name": "COURSE", "content": "Inglés A1"},
                                          {"name": "CAMPUS", "content": "Madrid"}],
                    "metadata": {"lead_id": "42"}},
    }
    assert message_id == fake.sent[0]["results"][0]["_id"]


def test_fake_accepts_the_json_suffix(fake):
    answer = requests.post(f"{fake.base_url}/messages/send-template.json", timeout=5, json={
        "key": KEY, "template_name": "lead-confirmation", "template_content": [],
        "message": {"to": [{"email": "ana@example.com"}]}})
    assert answer.status_code == 200 and answer.json()[0]["status"] == "sent"


def test_queued_counts_as_success(fake, integration):
    fake.queue_all("sending-backlogged")
    assert integration.send_template(**SEND) == fake.sent[0]["results"][0]["_id"]
    assert fake.sent[0]["results"][0]["status"] == "queued"


@pytest.mark.parametrize(("status", "reason"), [("rejected", "hard-bounce"), ("rejected", "unsub"),
                                                ("invalid", "invalid")])
def test_rejected_or_invalid_recipient_is_permanent_with_reason(fake, integration, status, reason):
    fake.reject("ana@example.com", reason, status=status)
    with pytest.raises(PermanentError, match=f"{status}: {reason}") as error:
        integration.send_template(**SEND)
    assert not isinstance(error.value, TransientError)
    assert "ana@example.com" not in str(error.value) and "a***@example.com" in str(error.value)


def test_unknown_template_at_the_fake_is_permanent(fake, integration):
    with pytest.raises(PermanentError, match="Unknown_Template"):
        integration.send_template(**{**SEND, "template": "no-such-template"})


def test_wrong_key_is_permanent_and_not_echoed(fake, settings_for):
    wrong = Mandrill(settings_for(mailchimp_transactional_key="md-wrong-key", mandrill_base_url=fake.base_url))
    with pytest.raises(PermanentError, match="Invalid_Key") as error:
        wrong.send_template(**SEND)
    assert "md-wrong-key" not in str(error.value)


@pytest.mark.parametrize("name", ["Invalid_Key", "ValidationError", "Unknown_Template", "Unknown_Subaccount",
                                  "PaymentRequired"])
@pytest.mark.parametrize("http_status", [500, 400])
def test_permanent_error_names_at_500_or_4xx(fake, integration, name, http_status):
    fake.fail_with(name, status=http_status)
    with pytest.raises(PermanentError, match=name) as error:
        integration.send_template(**SEND)
    assert not isinstance(error.value, TransientError)


@pytest.mark.parametrize("name", ["GeneralError", "RequestLimitExceeded"])
def test_transient_error_names_are_retried_after_retry_after(fake, integration, name):
    fake.fail_with(name, retry_after=30)
    with pytest.raises(TransientError, match=name) as error:
        integration.send_template(**SEND)
    assert error.value.retry_after == 30


def test_rate_limit_as_http_429_without_retry_after_is_transient(fake, integration):
    fake.fail_with("RequestLimitExceeded", status=429)
    with pytest.raises(TransientError) as error:
        integration.send_template(**SEND)
    assert error.value.retry_after is None


def test_undocumented_name_falls_back_to_the_status(fake, integration):
    fake.fail_with("Something_New")
    with pytest.raises(TransientError, match="HTTP 500"):
        integration.send_template(**SEND)
    fake.fail_with("Something_New", status=404)
    with pytest.raises(PermanentError, match="HTTP 404"):
        integration.send_template(**SEND)


def test_timeout_is_transient(fake, settings_for):
    slow = Mandrill(settings_for(mailchimp_transactional_key=KEY, mandrill_base_url=fake.base_url), timeout=(1, 0.2))
    fake.fail_next(200, [], delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        slow.send_template(**SEND)


def test_connection_refused_is_transient(settings_for):
    gone = Mandrill(settings_for(mailchimp_transactional_key=KEY,
                                 mandrill_base_url=f"http://127.0.0.1:{free_port()}/api/1.0"))
    with pytest.raises(TransientError, match="cannot connect"):
        gone.send_template(**SEND)


def test_unexpected_success_body_is_permanent_not_resent(fake, integration):
    fake.fail_next(200, [])
    with pytest.raises(PermanentError, match="unexpected send-template answer"):
        integration.send_template(**SEND)


def test_key_and_address_never_logged(fake, integration, caplog):
    caplog.set_level(logging.DEBUG)
    integration.send_template(**SEND)
    fake.fail_with("Invalid_Key")
    with pytest.raises(PermanentError):
        integration.send_template(**SEND)
    assert "POST /messages/send-template" in caplog.text
    assert KEY not in caplog.text and "ana@example.com" not in caplog.text


def test_disabled_without_key_names_the_setting(settings_for):
    integration = Mandrill(settings_for(mailchimp_transactional_key=None))
    assert not integration.enabled and "MAILCHIMP_TRANSACTIONAL_KEY" in integration.disabled_reason()


def test_hook_registers_through_the_plugin_manager(fresh_plugins, settings_for):
    settings = settings_for(mailchimp_transactional_key=KEY, mailchimp_list_id="list1")
    fresh_plugins.register(mandrill, name="mandrill")
    found = collect_integrations(settings).get("transactional_email", "mandrill")
    assert isinstance(found, Mandrill) and found.enabled
