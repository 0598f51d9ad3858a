"""What an integration of each kind must offer, so jobs can call any plugin of that kind.

A plugin subclasses one of these, sets ``name`` (and ``required_settings``), and registers an
instance with ``register_integrations``. Methods raise :class:`~cep_automation.errors.TransientError`
for what is worth retrying and :class:`~cep_automation.errors.PermanentError` for what is not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from cep_automation.plugins.integration import Integration


@dataclass(frozen=True)
class Contact:
    """A person as the marketing and CRM services see them."""

    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    tags: tuple[str, ...] = ()
    merge_fields: dict[str, str] = field(default_factory=dict)
    source: str = ""
    external_id: str = ""  # our lead id, for CRMs that upsert by external id

    @classmethod
    def from_name(cls, full_name: str, **fields: Any) -> Contact:
        first, _, last = full_name.strip().partition(" ")
        return cls(first_name=first, last_name=last, **fields)


@dataclass(frozen=True)
class CampaignMetrics:
    """Campaign figures for a period; absent figures are 0."""

    clicks: int = 0
    impressions: int = 0
    leads: int = 0
    spend: float = 0.0


@dataclass(frozen=True)
class Completion:
    """An LLM answer: the parsed JSON, tokens used and cost in USD."""

    data: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    model: str


class EmailMarketing(Integration):
    """A marketing list (Mailchimp)."""

    kind: ClassVar[str] = "email_marketing"

    def upsert_contact(self, contact: Contact) -> str:
        """Create or update the contact with its tags and merge fields; return the provider's id."""
        raise NotImplementedError

    def set_subscription(self, email: str, subscribed: bool) -> str:
        """Follow the person's consent: unsubscribe them, or subscribe them again (a service may ask them to
        confirm first); return the status the service now holds."""
        raise NotImplementedError

    def tag_contact(self, email: str, tags: list[str]) -> str:
        """Add tags to a contact already on the list (a sequence step); return the provider's id of the contact."""
        raise NotImplementedError


class TransactionalEmail(Integration):
    """Transactional email templates (Mandrill)."""

    kind: ClassVar[str] = "transactional_email"

    def send_template(self, template: str, to_email: str, to_name: str, merge_vars: dict[str, str],
                      metadata: dict[str, str]) -> str:
        """Send one templated email; return the provider's message id."""
        raise NotImplementedError


class Messaging(Integration):
    """Instant messages (WhatsApp Cloud API).

    A service that reports back, per message, a reference the sender chose (WhatsApp's status webhook
    returns ``biz_opaque_callback_data``) sets ``confirms_sends`` and answers :meth:`confirmed`: a job that
    died while sending then asks before it sends again, instead of sending twice.
    """

    kind: ClassVar[str] = "messaging"
    confirms_sends: ClassVar[bool] = False

    def send_template(self, to: str, template: str, language: str, params: list[str], *,
                      reference: str | None = None) -> str:
        """Send a template message carrying our ``reference``; return the message id (a ``wamid``)."""
        raise NotImplementedError

    def confirmed(self, reference: str) -> str | None:
        """The message id the service confirmed for ``reference``, or None (unknown, or not yet)."""
        return None

    def send_text(self, to: str, body: str) -> str:
        """Send free text (only inside the 24-hour window); return the message id."""
        raise NotImplementedError


class CRM(Integration):
    """A CRM that receives leads."""

    kind: ClassVar[str] = "crm"

    def upsert_lead(self, contact: Contact) -> str:
        """Create or update the lead (keyed by email or external id); return the CRM's record id."""
        raise NotImplementedError

    def create_task(self, contact: Contact, title: str, key: str) -> str:
        """A follow-up task for the lead's advisor (a sequence step); ``key`` is ours and the same on a retry, so a
        CRM that keys tasks by it never makes two. Return the CRM's task id. A CRM without tasks leaves this
        unimplemented and the step is skipped, saying so."""
        raise NotImplementedError


class Ads(Integration):
    """An ads platform (Meta Graph)."""

    kind: ClassVar[str] = "ads"

    def fetch_lead(self, leadgen_id: str) -> dict[str, Any]:
        """The lead form answers: ``{id, created_time, field_data: {name: value}, campaign_id, …}``."""
        raise NotImplementedError

    def campaign_metrics(self, campaign_id: str, since: dt.date, until: dt.date) -> CampaignMetrics:
        """Impressions, clicks, leads and spend of a campaign for the period."""
        raise NotImplementedError


class Analytics(Integration):
    """Web analytics (GA4 Data API)."""

    kind: ClassVar[str] = "analytics"

    def campaign_metrics(self, tracking_tag: str, since: dt.date, until: dt.date) -> CampaignMetrics:
        """Clicks (sessions) and leads (key events) of a tracked campaign for the period."""
        raise NotImplementedError


class LLM(Integration):
    """A language model (litellm)."""

    kind: ClassVar[str] = "llm"

    def complete_json(self, model: str, system: str, prompt: str) -> Completion:
        """Ask for a JSON object; raise PermanentError if the answer is not valid JSON."""
        raise NotImplementedError


class Storage(Integration):
    """Object storage (S3)."""

    kind: ClassVar[str] = "storage"

    def upload(self, key: str, stream: IO[bytes]) -> int:
        """Stream to ``key`` (multipart, never all in memory); return the bytes written."""
        raise NotImplementedError

    def open(self, key: str) -> IO[bytes]:
        """The stored object as a stream, to verify what was written."""
        raise NotImplementedError

    def list(self, prefix: str) -> list[dict[str, Any]]:
        """Objects under ``prefix``: ``{key, size, last_modified}``."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


SEVERITIES = ("low", "medium", "high", "critical")


def check_severity(severity: str) -> None:
    """Raise ``ValueError`` for a severity that is not one of :data:`SEVERITIES` (a bug in the caller)."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown alert severity {severity!r}; use one of {', '.join(SEVERITIES)}")


class Alerts(Integration):
    """Where alerts go (log, Slack-style webhook, email)."""

    kind: ClassVar[str] = "alerts"

    def send(self, severity: str, title: str, body: str = "", **context: Any) -> None:
        """Deliver one alert of severity low, medium, high or critical."""
        raise NotImplementedError
