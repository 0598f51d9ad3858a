"""Every third-party API as a local fake, and the settings that point cep_automation at them.

Used by the end-to-end tests of the jobs and by ``cep-automation dev --demo``, so that a
machine with no credentials still sees every job do real work over HTTP. The fakes keep what
they received in memory (``sandbox.whatsapp.messages``, ``sandbox.mailchimp.members`` …).
"""

from __future__ import annotations

from typing import Any

from cep_automation.testing.fake_crm_webhook import FakeCrmWebhook
from cep_automation.testing.fake_ga4 import FakeGA4
from cep_automation.testing.fake_mailchimp import FakeMailchimp
from cep_automation.testing.fake_mandrill import FakeMandrill
from cep_automation.testing.fake_meta import FakeMetaGraph
from cep_automation.testing.fake_openai import FakeOpenAI
from cep_automation.testing.fake_slack import FakeSlack
from cep_automation.testing.fake_whatsapp import FakeWhatsApp
from cep_automation.testing.fakes import FakeServer

# The email templates of the shipped sequences (cep_automation/sequences/default.toml).
SEQUENCE_TEMPLATES = ("nurture-course-details", "nurture-last-call", "course-start-week")
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us21"
LIST_ID = "cep-leads"


class Sandbox:
    """The fakes, started and stopped together; :meth:`env` is what a process needs to use them."""

    def __init__(self) -> None:
        self.mailchimp = FakeMailchimp(MAILCHIMP_KEY, lists=(LIST_ID,))
        self.mandrill = FakeMandrill("mandrill-sandbox-key", templates=(
            "lead-confirmation", "daily-digest", *SEQUENCE_TEMPLATES))
        self.whatsapp = FakeWhatsApp(token="whatsapp-sandbox-token")
        self.meta = FakeMetaGraph(token="meta-sandbox-token")
        self.ga4 = FakeGA4(tokens=("ga4-sandbox-token",))
        self.crm = FakeCrmWebhook(secret="crm-sandbox-secret")
        self.openai = FakeOpenAI()
        self.slack = FakeSlack()

    @property
    def fakes(self) -> list[FakeServer]:
        return [self.mailchimp, self.mandrill, self.whatsapp, self.meta, self.ga4, self.crm, self.openai, self.slack]

    def start(self) -> Sandbox:
        for fake in self.fakes:
            fake.start()
        return self

    def stop(self) -> None:
        for fake in self.fakes:
            fake.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Settings for every integration, pointing at the fakes."""
        return {
            "MAILCHIMP_API_KEY": MAILCHIMP_KEY, "MAILCHIMP_LIST_ID": LIST_ID,
            "MAILCHIMP_BASE_URL": self.mailchimp.base_url,
            "MAILCHIMP_TRANSACTIONAL_KEY": self.mandrill.key, "MANDRILL_BASE_URL": self.mandrill.base_url,
            "WHATSAPP_PHONE_NUMBER_ID": self.whatsapp.phone_number_id,
            "WHATSAPP_ACCESS_TOKEN": "whatsapp-sandbox-token", "WHATSAPP_BASE_URL": self.whatsapp.base_url,
            "META_ACCESS_TOKEN": "meta-sandbox-token", "META_GRAPH_BASE_URL": self.meta.base_url,
            "META_APP_SECRET": "meta-sandbox-app-secret", "META_VERIFY_TOKEN": "meta-sandbox-verify",
            "GA4_PROPERTY_ID": self.ga4.property_id, "GA4_CREDENTIALS": "ga4-sandbox-token",
            "GA4_BASE_URL": self.ga4.base_url,
            "CRM_ENABLED": "true", "CRM_WEBHOOK_URL": self.crm.endpoint, "CRM_WEBHOOK_SECRET": self.crm.secret,
            "LLM_API_BASE": self.openai.base_url, "OPENAI_API_KEY": "sk-sandbox",
            "CEP_ALERT_WEBHOOK_URL": self.slack.hook_url(),
        }
