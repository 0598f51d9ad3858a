"""The Salesforce CRM plugin against the package's own fake Salesforce (upsert by external id, error arrays)."""

from __future__ import annotations

import logging

import pytest

import cep_automation_salesforce
from cep_automation.plugins import Contact, PermanentError, TransientError
from cep_automation_salesforce.testing import FakeSalesforce

ANA = Contact(email="ana.garcia@example.com", first_name="Ana", last_name="García", phone="+34600123456",
              source="Web", external_id="42")


def test_new_lead_is_created_with_201(salesforce, make_crm):
    record_id = make_crm().upsert_lead(ANA)

    sent = salesforce.requests[-1]
    assert (sent.method, sent.path) == ("PATCH", "/services/data/v60.0/sobjects/Lead/ExtId__c/42")
    assert sent.headers["authorization"] == "Bearer 00Dxx0000001gPL!sf-test-token"
    assert sent.json == {"LastName": "García", "Company": "CEP lead", "FirstName": "Ana",
                         "Email": "ana.garcia@example.com", "Phone": "+34600123456", "LeadSource": "Web"}
    assert salesforce.leads[record_id]["ExtId__c"] == "42" and record_id.startswith("00Q")


def test_existing_lead_is_updated_with_200(salesforce, make_crm):
    crm = make_crm()
    first = crm.upsert_lead(ANA)
    again = crm.upsert_lead(Contact(email="ana.nueva@example.com", first_name="Ana", external_id="42"))

    assert again == first and len(salesforce.leads) == 1
    assert salesforce.leads[first]["Email"] == "ana.nueva@example.com"
    assert salesforce.leads[first]["Phone"] == "+34600123456"  # not sent, so not blanked


def test_old_api_answers_204_and_the_id_is_read_back(salesforce, make_crm):
    existing = salesforce.add_lead(value="42", LastName="García", Company="CEP lead")

    assert make_crm(api_version="v45.0").upsert_lead(ANA) == existing
    assert [(r.method, r.path) for r in salesforce.requests] == [
        ("PATCH", "/services/data/v45.0/sobjects/Lead/ExtId__c/42"),
        ("GET", "/services/data/v45.0/sobjects/Lead/ExtId__c/42"),
    ]
    assert salesforce.requests[-1].query == {"fields": ["Id"]}


def test_required_fields_fall_back_when_the_lead_lacks_them(salesforce, make_crm):
    record_id = make_crm().upsert_lead(Contact(email="", first_name="Ana", external_id="7"))
    assert salesforce.leads[record_id] | {"Id": ""} == {"Id": "", "ExtId__c": "7", "LastName": "-",
                                                        "Company": "CEP lead", "FirstName": "Ana"}


def test_external_id_field_and_version_come_from_settings(make_crm):
    with FakeSalesforce(token="t", external_id_fields=("CEP_Lead_Id__c",)) as org:
        crm = cep_automation_salesforce.SalesforceCRM(cep_automation_salesforce.SalesforceSettings(
            _env_file=None, instance_url=org.url, token="t", api_version="59.0", external_id_field="CEP_Lead_Id__c"))
        crm.upsert_lead(Contact(email="", external_id="lead/7 b"))
        assert org.requests[-1].path == "/services/data/v59.0/sobjects/Lead/CEP_Lead_Id__c/lead%2F7%20b"
        assert org.find("CEP_Lead_Id__c", "lead/7 b")


def test_unknown_external_id_field_is_permanent(make_crm):
    with pytest.raises(PermanentError, match="404 NOT_FOUND.*External_Id__c"):
        make_crm(external_id_field="External_Id__c").upsert_lead(ANA)


def test_several_matches_answer_300_and_are_permanent(salesforce, make_crm):
    salesforce.add_lead(value="42", LastName="A", Company="x")
    salesforce.add_lead(value="42", LastName="B", Company="x")
    with pytest.raises(PermanentError, match="several Leads have ExtId__c=42"):
        make_crm().upsert_lead(ANA)


def test_invalid_session_is_permanent(salesforce, make_crm):
    salesforce.expire_session()
    with pytest.raises(PermanentError, match="HTTP 401 INVALID_SESSION_ID"):
        make_crm().upsert_lead(ANA)
    with pytest.raises(PermanentError, match="INVALID_SESSION_ID"):
        make_crm(token="revoked").upsert_lead(ANA)


def test_request_limit_exceeded_is_transient_with_a_long_wait(salesforce, make_crm):
    salesforce.exceed_limit()
    with pytest.raises(TransientError, match="HTTP 403 REQUEST_LIMIT_EXCEEDED") as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == 3600
    assert salesforce.leads == {}


def test_429_with_retry_after_is_transient(salesforce, make_crm):
    salesforce.fail_next(429, [{"message": "slow down", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                         headers={"Retry-After": "30"})
    with pytest.raises(TransientError) as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == 30


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient_and_the_retry_succeeds(salesforce, make_crm, status):
    salesforce.fail_server(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        make_crm().upsert_lead(ANA)
    assert make_crm().upsert_lead(ANA) in salesforce.leads


@pytest.mark.parametrize("code, fields", [("REQUIRED_FIELD_MISSING", ["Company"]), ("INVALID_FIELD", []),
                                          ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["LeadSource"])])
def test_400_errors_are_permanent(salesforce, make_crm, code, fields):
    salesforce.reject(code, f"{code} for ana.garcia@example.com", fields)
    with pytest.raises(PermanentError, match=f"HTTP 400 {code}") as error:
        make_crm().upsert_lead(ANA)
    assert "ana.garcia@example.com" not in str(error.value)


def test_timeout_is_transient(salesforce, make_crm):
    salesforce.fail_next(201, {"id": "late"}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        make_crm(timeout=(1, 0.2)).upsert_lead(ANA)


def test_lead_without_id_is_permanent_and_sends_nothing(salesforce, make_crm):
    with pytest.raises(PermanentError, match="no id"):
        make_crm().upsert_lead(Contact(email="ana.garcia@example.com"))
    assert salesforce.requests == []


def test_logs_hold_no_token_or_personal_data(salesforce, make_crm, caplog):
    caplog.set_level(logging.DEBUG)
    make_crm().upsert_lead(ANA)
    assert "PATCH" in caplog.text
    assert "sf-test-token" not in caplog.text and "ana.garcia@example.com" not in caplog.text


def test_disabled_without_settings(no_salesforce_env, monkeypatch):
    crm = cep_automation_salesforce.SalesforceCRM(cep_automation_salesforce.SalesforceSettings())
    assert crm.disabled_reason() == "not configured: set SALESFORCE_INSTANCE_URL, SALESFORCE_TOKEN"
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "https://cep.my.salesforce.com")
    crm = cep_automation_salesforce.SalesforceCRM(cep_automation_salesforce.SalesforceSettings())
    assert crm.disabled_reason() == "not configured: set SALESFORCE_TOKEN"


def test_hook_reads_the_salesforce_variables(no_salesforce_env, monkeypatch, salesforce):
    registered = []
    cep_automation_salesforce.register_integrations(register=registered.append)
    assert [(i.kind, i.name, i.enabled) for i in registered] == [("crm", "salesforce", False)]

    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", salesforce.url)
    monkeypatch.setenv("SALESFORCE_TOKEN", salesforce.token)
    monkeypatch.setenv("SALESFORCE_API_VERSION", "v61.0")
    cep_automation_salesforce.register_integrations(register=registered.append)
    assert registered[-1].enabled
    assert registered[-1].upsert_lead(ANA) in salesforce.leads
    assert salesforce.requests[-1].path.startswith("/services/data/v61.0/")
