"""No token, no unmasked email and no unmasked phone number in any log of the fault suite.

Every test of this folder is checked by the ``log_guard`` fixture (its worker processes' output and its own
log records). This module checks the checker, and runs the one workload made to tempt the logs: DEBUG level
everywhere, and provider errors that quote the lead's email and phone number back.
"""

from __future__ import annotations

import pytest
from faultkit import leaks
from loadkit import Lead, settled

from cep_automation.testing import wait_for
from cep_automation.testing.fake_mailchimp import problem

pytestmark = pytest.mark.slow
ANA = Lead("3f0c9f0e-0000-4000-8000-000000000001", "Ana García", "ana.garcia@example.com", "+34 612 345 678",
           "+34699000002")


@pytest.mark.parametrize("text", [
    "token=whatsapp-sandbox-token in a URL", "Authorization: Bearer whatsapp-sandbox-token",
    "sending to ana.garcia@example.com", "to Ana.Garcia@Example.COM", "phone +34 612 345 678", "phone 612-345-678",
    "wa_id 34612345678", "advisor +34699000002",
])
def test_the_scanner_finds_each_leak(text):
    assert leaks(text, secrets_=["whatsapp-sandbox-token"], leads=[ANA])


@pytest.mark.parametrize("text", [
    "sending to a***@example.com", "phone +34*******678", "lead 3f0c9f0e-0000-4000-8000-000000000001",
    "took 612345 ms", "wamid.HBgLNjEyMzQ1Njc4OTAxMjM0NTY3OA==", "postgresql://postgres@127.0.0.1:5432/db",
])
def test_the_scanner_lets_masked_and_harmless_text_pass(text):
    assert leaks(text, secrets_=["whatsapp-sandbox-token"], leads=[ANA]) == []


def test_debug_logs_of_failing_jobs_show_no_secret_or_personal_data(db, sandbox, fault_env, workers, leads, producer,
                                                                     log_guard, cep_services):
    # Given providers that refuse some leads quoting their email or phone number back in the error
    load = leads(db, 12)
    refused = {lead.email: lead for lead in load[:4]}
    undeliverable = {lead.wa_id: lead for lead in load[4:8]}
    quote_back(sandbox, refused, undeliverable)
    # When they run on a worker logging at DEBUG (ours and every library's)
    workers(fault_env(CEP_LOG_LEVEL="DEBUG"), threads=2, verbose=True)
    messages = producer().send_leads(load)
    wait_for(lambda: settled(cep_services.database_url, load, messages), timeout=120,
             what="every lead to be completed or dead-lettered")
    # Then the logs did carry the masked forms (so the guard had something to look at) ...
    text = "".join(path.read_text() for path in log_guard.files)
    assert "***@example.com" in text and "+34******" in text
    # ... and the guard (log_guard, at teardown) finds no secret, email or phone in them


def test_a_phone_written_as_whatsapp_writes_it_is_masked_too():
    from cep_automation.redact import redact

    assert leaks(redact("recipient 34612345678 is not on WhatsApp"), leads=[ANA]) == []


def quote_back(sandbox, refused, undeliverable):
    mailchimp, whatsapp = sandbox.mailchimp.handle, sandbox.whatsapp.handle

    def mailchimp_handle(request):
        email = (request.json or {}).get("email_address", "") if request.method == "PUT" else ""
        return problem("Member In Compliance State", email=email) if email in refused else mailchimp(request)

    def whatsapp_handle(request):
        to = (request.json or {}).get("to", "")
        if to in undeliverable:
            return sandbox.whatsapp.error(131026, error_data={"messaging_product": "whatsapp",
                                                              "details": f"+{to} is not on WhatsApp"})
        return whatsapp(request)

    sandbox.mailchimp.handle, sandbox.whatsapp.handle = mailchimp_handle, whatsapp_handle
