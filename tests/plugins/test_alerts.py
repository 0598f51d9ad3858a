"""Alert sinks (Slack-style webhook against a fake, email against a real local SMTP server) and send_alert:
collapse across calls through Redis, a failing sink not stopping the others, severities, redaction."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from cep_automation.db.redis_client import key
from cep_automation.dev.embedded import free_port
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import alerts
from cep_automation.plugins.alerts import EmailAlerts, WebhookAlerts
from cep_automation.plugins.default_alerts import LogAlerts
from cep_automation.plugins.registry import Registry
from cep_automation.runtime.alerts import send_alert
from cep_automation.settings import load_settings
from cep_automation.testing.fake_slack import HOOK_PATH, FakeSlack

OPS = "ops@cepformacion.es"
SECRET = HOOK_PATH.rsplit("/", 1)[1]


class Inbox:
    """An aiosmtpd handler keeping each message; replies can be scripted to refuse."""

    def __init__(self):
        self.messages = []
        self.rcpt_reply = None
        self.data_reply = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def slack():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def inbox():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture
def settings_for(cep_services, slack, inbox):
    def make(**values):
        defaults = {"cep_alert_webhook_url": slack.hook_url(), "cep_alert_email_to": OPS, "smtp_host": "127.0.0.1",
                    "smtp_port": inbox.port, "smtp_starttls": False, "cep_alert_collapse_s": 60}
        return load_settings(_env_file=None, redis_url=cep_services.redis_url,
                             database_url=cep_services.database_url, **{**defaults, **values})

    return make


@pytest.fixture
def sinks(settings_for):
    settings = settings_for()
    return [WebhookAlerts(settings), EmailAlerts(settings)]


def test_webhook_receives_the_alert(slack, settings_for):
    WebhookAlerts(settings_for()).send("high", "Backup failed", "pg_dump exited with 1", job="backup.daily")
    (message,) = slack.messages
    assert message["text"] == "[HIGH] Backup failed\npg_dump exited with 1"
    (attachment,) = message["attachments"]
    assert attachment["color"] == alerts.COLORS["high"]
    assert attachment["fields"] == [{"title": "job", "value": "backup.daily", "short": True}]
    assert slack.requests[0].path == HOOK_PATH


@pytest.mark.parametrize(("error", "kind"), [("rate_limited", TransientError), ("rollup_error", TransientError),
                                             ("no_service", PermanentError), ("invalid_payload", PermanentError)])
def test_webhook_errors_are_classified_and_hide_the_secret_path(slack, settings_for, caplog, error, kind):
    caplog.set_level(logging.INFO)
    slack.fail_with(error, retry_after="30")
    with pytest.raises(kind, match=error) as raised:
        WebhookAlerts(settings_for()).send("low", "t")
    if kind is TransientError:
        assert raised.value.retry_after == 30
    assert SECRET not in str(raised.value) and SECRET not in caplog.text
    assert "POST /***" in caplog.text


def test_webhook_timeout_is_transient_without_the_secret(slack, settings_for):
    slack.fail_next(200, b"ok", delay_s=1.0)
    with pytest.raises(TransientError, match="timed out") as raised:
        WebhookAlerts(settings_for(), timeout=(1, 0.2)).send("low", "t")
    assert SECRET not in str(raised.value)


def test_email_is_received_with_severity_and_title_in_the_subject(inbox, settings_for):
    EmailAlerts(settings_for()).send("critical", "Queue stuck", "leads has 500 waiting", queue="leads")
    (message,) = inbox.messages
    assert message["Subject"] == "[cep_automation CRITICAL] Queue stuck"
    assert message["To"] == OPS and message["From"] == "alerts@cepformacion.es"
    text = message.get_content().replace("\r\n", "\n")
    assert "[CRITICAL] Queue stuck\nleads has 500 waiting" in text and "queue: leads" in text


def test_email_to_several_recipients(inbox, settings_for):
    EmailAlerts(settings_for(cep_alert_email_to=f"{OPS}, dev@cepformacion.es")).send("low", "t")
    assert inbox.messages[0]["To"] == f"{OPS}, dev@cepformacion.es"


def test_email_errors_are_classified(inbox, settings_for):
    email = EmailAlerts(settings_for())
    inbox.rcpt_reply = "550 5.1.1 <ops@cepformacion.es>: Recipient address rejected"
    with pytest.raises(PermanentError, match="Recipient") as raised:
        email.send("low", "t")
    assert OPS not in str(raised.value)
    inbox.rcpt_reply, inbox.data_reply = None, "451 4.3.0 Try again later"
    with pytest.raises(TransientError, match="451"):
        email.send("low", "t")


def test_email_starttls_only_when_asked(inbox, settings_for):
    with pytest.raises(PermanentError, match="STARTTLS"):  # this local server offers no STARTTLS
        EmailAlerts(settings_for(smtp_starttls=True)).send("low", "t")
    assert inbox.messages == []


def test_unreachable_smtp_server_is_transient(settings_for):
    with pytest.raises(TransientError):
        EmailAlerts(settings_for(smtp_port=free_port())).send("low", "t")


def test_identical_alert_is_collapsed_within_the_window(slack, inbox, sinks, settings_for, redis_client):
    settings = settings_for(cep_alert_collapse_s=60)
    first = send_alert(sinks, "high", "Backup failed", "disk full", settings=settings)
    second = send_alert(sinks, "high", "Backup failed", "disk full", settings=settings)
    other = send_alert(sinks, "high", "Backup failed", "timeout", settings=settings)
    assert first.sent == ["log", "webhook", "email"] and not first.collapsed
    assert second.collapsed and second.sent == []
    assert other.sent == ["log", "webhook", "email"]
    assert len(slack.messages) == 2 and len(inbox.messages) == 2
    assert 0 < max(redis_client.ttl(k) for k in redis_client.keys(key("alert", "*"))) <= 60


def test_no_collapse_with_a_zero_window(slack, sinks, settings_for, redis_client):
    settings = settings_for(cep_alert_collapse_s=0)
    for _ in range(2):
        assert not send_alert(sinks, "low", "same", settings=settings).collapsed
    assert len(slack.messages) == 2


def test_a_failing_sink_does_not_stop_the_others(slack, inbox, sinks, settings_for, redis_client, caplog):
    slack.fail_with("rollup_error")
    outcome = send_alert(sinks, "critical", "Worker down", settings=settings_for())
    assert outcome.sent == ["log", "email"] and list(outcome.failed) == ["webhook"]
    assert len(inbox.messages) == 1
    assert "alert sink webhook failed" in caplog.text


def test_log_sink_always_and_disabled_sinks_skipped(slack, settings_for, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="cep_automation.alerts")
    settings = settings_for(cep_alert_webhook_url=None)
    registry = Registry()
    registry.add(WebhookAlerts(settings), "alerts")
    registry.add(EmailAlerts(settings_for(smtp_host=None)), "alerts")
    outcome = send_alert(registry, "medium", "Campaign sync slow", settings=settings)
    assert outcome.sent == ["log"] and slack.requests == []
    assert any(r.levelno == logging.WARNING and "Campaign sync slow" in r.getMessage() for r in caplog.records)


def test_unknown_severity_is_a_value_error(sinks, settings_for):
    with pytest.raises(ValueError, match="low, medium, high, critical"):
        send_alert(sinks, "urgent", "t", settings=settings_for())
    for sink in sinks:
        with pytest.raises(ValueError):
            sink.send("warning", "t")


def test_alert_text_is_redacted_everywhere(slack, inbox, sinks, settings_for, redis_client, caplog):
    caplog.set_level(logging.INFO)
    send_alert(sinks, "high", "Lead ana.garcia@example.com failed",
               "WhatsApp to +34 600 123 456 refused; header Authorization: Bearer EAAGsecretTOKEN",
               settings=settings_for(), lead_email="ana.garcia@example.com")
    email_text = inbox.messages[0].as_string()
    for text in (str(slack.messages), email_text, caplog.text):
        assert "ana.garcia@example.com" not in text and "600 123 456" not in text and "EAAGsecretTOKEN" not in text
    assert "a***@example.com" in slack.messages[0]["text"]


def test_sinks_called_directly_redact_too(slack, settings_for):
    WebhookAlerts(settings_for()).send("low", "call ana@example.com", "", phone="+34 600 123 456")
    assert "ana@example.com" not in str(slack.messages) and "600 123 456" not in str(slack.messages)


def test_disabled_reasons_name_the_settings(settings_for):
    settings = settings_for(cep_alert_webhook_url=None, cep_alert_email_to=None, smtp_host=None)
    assert "CEP_ALERT_WEBHOOK_URL" in WebhookAlerts(settings).disabled_reason()
    assert "CEP_ALERT_EMAIL_TO, SMTP_HOST" in EmailAlerts(settings).disabled_reason()
    assert LogAlerts(settings=None).enabled


def test_plugin_registers_webhook_and_email(settings_for):
    registered = []
    alerts.register_integrations(register=registered.append, settings=settings_for())
    assert [(i.kind, i.name) for i in registered] == [("alerts", "webhook"), ("alerts", "email")]
