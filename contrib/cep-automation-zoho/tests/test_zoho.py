"""The Zoho CRM plugin against the package's own fake Zoho (Leads/upsert, per-record results, errors)."""

from __future__ import annotations

import logging

import pytest

import cep_automation_zoho
from cep_automation.plugins import Contact, PermanentError, TransientError

ANA = Contact(email="ana.garcia@example.com", first_name="Ana", last_name="García", phone="+34600123456",
              source="Meta Lead Ads", external_id="42")


def test_new_lead_is_inserted(zoho, make_crm):
    lead_id = make_crm().upsert_lead(ANA)

    sent = zoho.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/crm/v8/Leads/upsert")
    assert sent.headers["authorization"] == "Zoho-oauthtoken 1000.zoho-test-token.abc"
    assert sent.json == {"data": [{"Last_Name": "García", "First_Name": "Ana", "Email": "ana.garcia@example.com",
                                   "Phone": "+34600123456", "Lead_Source": "Meta Lead Ads"}],
                         "duplicate_check_fields": ["Email"]}
    assert zoho.leads[lead_id]["Email"] == "ana.garcia@example.com"


def test_same_email_updates_the_lead(zoho, make_crm):
    crm = make_crm()
    first = crm.upsert_lead(ANA)
    again = crm.upsert_lead(Contact(email="ANA.GARCIA@example.com", first_name="Ana María", external_id="43"))

    assert again == first and len(zoho.leads) == 1
    assert zoho.leads[first]["First_Name"] == "Ana María"
    assert zoho.leads[first]["Phone"] == "+34600123456"  # not sent, so not blanked


def test_last_name_falls_back_and_version_comes_from_settings(zoho, make_crm):
    lead_id = make_crm(api_version="v2").upsert_lead(Contact(email="luis@example.com", first_name="Luis"))
    assert zoho.requests[-1].path == "/crm/v2/Leads/upsert"
    assert zoho.leads[lead_id]["Last_Name"] == "-"


@pytest.mark.parametrize("code", ["INVALID_DATA", "MANDATORY_NOT_FOUND", "DUPLICATE_DATA"])
def test_failed_record_is_permanent(zoho, make_crm, code):
    zoho.reject_record(code, api_name="Email")
    with pytest.raises(PermanentError, match=f"{code} \\(Email\\)"):
        make_crm().upsert_lead(ANA)


def test_invalid_email_is_refused_by_zoho_and_permanent(zoho, make_crm):
    with pytest.raises(PermanentError, match="HTTP 400 INVALID_DATA \\(Email\\)"):
        make_crm().upsert_lead(Contact(email="ana@invalid", last_name="García"))
    assert zoho.leads == {}


def test_failed_record_in_a_2xx_answer_is_permanent(zoho, make_crm):
    failed = {"code": "DUPLICATE_DATA", "details": {"api_name": "Phone", "json_path": "$.data[0].Phone"},
              "message": "duplicate data", "status": "error"}
    zoho.fail_next(207, {"data": [failed]})
    with pytest.raises(PermanentError, match="HTTP 207 DUPLICATE_DATA \\(Phone\\)"):
        make_crm().upsert_lead(ANA)


@pytest.mark.parametrize("code", ["INVALID_TOKEN", "AUTHENTICATION_FAILURE", "OAUTH_SCOPE_MISMATCH"])
def test_auth_errors_are_permanent(zoho, make_crm, code):
    zoho.fail_auth(code)
    with pytest.raises(PermanentError, match=f"HTTP 401 {code}"):
        make_crm().upsert_lead(ANA)


def test_wrong_token_is_refused_by_the_fake(make_crm):
    with pytest.raises(PermanentError, match="INVALID_TOKEN"):
        make_crm(token="expired").upsert_lead(ANA)


def test_too_many_requests_is_transient(zoho, make_crm):
    zoho.rate_limit()
    with pytest.raises(TransientError, match="429 TOO_MANY_REQUESTS") as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == 60
    zoho.rate_limit(retry_after=5)
    with pytest.raises(TransientError) as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == 5


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient_and_the_retry_succeeds(zoho, make_crm, status):
    zoho.fail_server(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        make_crm().upsert_lead(ANA)
    assert make_crm().upsert_lead(ANA) in zoho.leads


def test_2xx_without_a_record_result_is_transient(zoho, make_crm):
    zoho.fail_next(200, {"data": []})
    with pytest.raises(TransientError, match="without a per-record result"):
        make_crm().upsert_lead(ANA)


def test_timeout_is_transient(zoho, make_crm):
    zoho.fail_next(200, {"data": []}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        make_crm(timeout=(1, 0.2)).upsert_lead(ANA)


def test_lead_without_email_is_permanent_and_sends_nothing(zoho, make_crm):
    with pytest.raises(PermanentError, match="no email"):
        make_crm().upsert_lead(Contact(email="", phone="+34600123456"))
    assert zoho.requests == []


def test_logs_and_errors_hold_no_token_or_personal_data(zoho, make_crm, caplog):
    caplog.set_level(logging.DEBUG)
    zoho.reject_record("INVALID_DATA", message="invalid data: ana.garcia@example.com, +34600123456")
    with pytest.raises(PermanentError) as error:
        make_crm().upsert_lead(ANA)
    for text in (caplog.text, str(error.value)):
        assert "zoho-test-token" not in text and "ana.garcia@example.com" not in text and "+34600123456" not in text


def test_disabled_without_settings(no_zoho_env, monkeypatch):
    crm = cep_automation_zoho.ZohoCRM(cep_automation_zoho.ZohoSettings())
    assert crm.disabled_reason() == "not configured: set ZOHO_API_DOMAIN, ZOHO_TOKEN"
    monkeypatch.setenv("ZOHO_API_DOMAIN", "https://www.zohoapis.eu")
    crm = cep_automation_zoho.ZohoCRM(cep_automation_zoho.ZohoSettings())
    assert crm.disabled_reason() == "not configured: set ZOHO_TOKEN"


def test_hook_reads_the_zoho_variables(no_zoho_env, monkeypatch, zoho):
    registered = []
    cep_automation_zoho.register_integrations(register=registered.append)
    assert [(i.kind, i.name, i.enabled) for i in registered] == [("crm", "zoho", False)]

    monkeypatch.setenv("ZOHO_API_DOMAIN", zoho.url)
    monkeypatch.setenv("ZOHO_TOKEN", zoho.token)
    cep_automation_zoho.register_integrations(register=registered.append)
    assert registered[-1].enabled and registered[-1].upsert_lead(ANA) in zoho.leads
