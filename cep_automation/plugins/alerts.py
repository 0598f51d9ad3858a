"""Built-in alert sinks besides the log: a Slack-style webhook and email over SMTP.

Alert text is redacted here too (emails, phones, tokens), so a direct caller cannot leak personal
data into a channel. A webhook URL carries its secret in the path (Slack: ``/services/T…/B…/<token>``),
so the path is kept out of log lines and error messages.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration
from cep_automation.plugins.kinds import Alerts, check_severity
from cep_automation.redact import redact
from cep_automation.settings import Settings

COLORS = {"low": "#439FE0", "medium": "#ECB22E", "high": "#E01E5A", "critical": "#7A0019"}
WEBHOOK_CLIENT = "alert-webhook"
SMTP_TIMEOUT_S = 30.0


def alert_text(severity: str, title: str, body: str = "") -> str:
    """``[HIGH] title`` and the body on the next line, redacted."""
    return redact(f"[{severity.upper()}] {title}" + (f"\n{body}" if body else ""))


class _HideWebhookPath(logging.Filter):
    """Masks the path argument of HttpClient's log line for the webhook (the path is the secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple("/***" if isinstance(a, str) and a.startswith("/") else a for a in record.args)
        return True


logging.getLogger(f"cep_automation.plugins.http.{WEBHOOK_CLIENT}").addFilter(_HideWebhookPath())


class WebhookAlerts(HttpIntegration, Alerts):
    """Posts ``{"text": "[SEVERITY] title\\nbody", "attachments": [{color, fields}]}`` to a Slack-style webhook.

    Parameters:
      settings: uses ``cep_alert_webhook_url``.
      timeout: (connect, read) seconds.
    Raises:
      TransientError: timeouts, connection errors, 429 and 5xx. PermanentError: other 4xx.
    """

    name = "webhook"
    required_settings = ("cep_alert_webhook_url",)
    default_timeout = (5.0, 10.0)
    client_name = WEBHOOK_CLIENT

    @property
    def base_url(self) -> str:
        """Scheme and host of the webhook URL; the path, which holds the secret, is sent per request."""
        url = urlsplit(self.settings.cep_alert_webhook_url)
        return f"{url.scheme}://{url.netloc}"

    def send(self, severity: str, title: str, body: str = "", **context: Any) -> None:
        check_severity(severity)
        url = urlsplit(self.settings.cep_alert_webhook_url)
        path = url.path + (f"?{url.query}" if url.query else "")
        try:
            self.client().post(path, json=webhook_payload(severity, title, body, context))
        except TransientError as exc:
            raise TransientError(_hide(str(exc), path), retry_after=exc.retry_after) from None
        except PermanentError as exc:
            raise PermanentError(_hide(str(exc), path)) from None


def webhook_payload(severity: str, title: str, body: str, context: dict[str, Any]) -> dict[str, Any]:
    """Slack's message format: plain ``text`` for any receiver, context as attachment fields."""
    payload: dict[str, Any] = {"text": alert_text(severity, title, body)}
    fields = [{"title": name, "value": redact(str(value)), "short": True} for name, value in context.items()]
    payload["attachments"] = [{"color": COLORS[severity], "fields": fields, "footer": "cep_automation"}]
    return payload


def _hide(message: str, path: str) -> str:
    return message.replace(redact(path), "/***").replace(path, "/***")


class EmailAlerts(Alerts):
    """Emails each alert, subject ``[cep_automation SEVERITY] title``, to ``cep_alert_email_to`` (comma-separated).

    Parameters:
      settings: uses ``cep_alert_email_to``, ``smtp_host``, ``smtp_port`` (465 = implicit TLS),
        ``smtp_starttls``, ``smtp_user``, ``smtp_password`` and ``smtp_from``.
      timeout: seconds for each SMTP operation.
    Raises:
      TransientError: connection errors, timeouts and 4xx SMTP replies.
      PermanentError: authentication failure, refused recipients, 5xx replies, no STARTTLS.
    """

    name = "email"
    required_settings = ("cep_alert_email_to", "smtp_host")

    def __init__(self, settings: Any, *, timeout: float = SMTP_TIMEOUT_S) -> None:
        super().__init__(settings)
        self.timeout = timeout

    def send(self, severity: str, title: str, body: str = "", **context: Any) -> None:
        check_severity(severity)
        message = self.message(severity, title, body, context)
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise smtp_error(exc) from None

    def message(self, severity: str, title: str, body: str, context: dict[str, Any]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = redact(f"[cep_automation {severity.upper()}] {title}").replace("\n", " ")
        message["From"] = self.settings.smtp_from
        message["To"] = ", ".join(self.recipients)
        lines = [alert_text(severity, title, body), ""] + [redact(f"{k}: {v}") for k, v in context.items()]
        message.set_content("\n".join(lines))
        return message

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in str(self.settings.cep_alert_email_to).split(",") if a.strip()]

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=self.timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        try:
            if s.smtp_starttls and s.smtp_port != 465:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value() if s.smtp_password else "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def smtp_error(exc: Exception) -> Exception:
    """Our error for an smtplib or socket failure (SMTP 4xx replies are temporary by definition)."""
    what = redact(f"email: {type(exc).__name__}: {exc}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentError(f"{what}; check SMTP_USER and SMTP_PASSWORD")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"{what}; the server offers no STARTTLS (SMTP_STARTTLS=false only on a trusted network)")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return TransientError(what) if codes and all(400 <= c < 500 for c in codes) else PermanentError(what)
    if isinstance(exc, smtplib.SMTPResponseException):
        return TransientError(what) if 400 <= exc.smtp_code < 500 else PermanentError(what)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(what)
    return TransientError(what)  # disconnected, refused, timed out


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(WebhookAlerts(settings))
    register(EmailAlerts(settings))
