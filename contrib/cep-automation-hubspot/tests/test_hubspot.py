"""The HubSpot CRM plugin against the package's own fake HubSpot (search lag, 409, rate limits, errors)."""

from __future__ import annotations

import logging

import pytest

import cep_automation_hubspot
from cep_automation.plugins import (
    Contact,
    PermanentError,
    TransientError,
    collect_integrations,
    get_plugin_manager,
    load_plugins,
    reset_plugins,
)

ANA = Contact(email="Ana.Garcia@example.com", first_name="Ana", last_name="García", phone="+34600123456",
              external_id="42")


def calls(hubspot):
    return [f"{r.method} {r.path}" for r in hubspot.requests]


def test_new_lead_is_searched_then_created(hubspot, make_crm):
    contact_id = make_crm().upsert_lead(ANA)

    assert calls(hubspot) == ["POST /crm/v3/objects/contacts/search", "POST /crm/v3/objects/contacts"]
    assert hubspot.requests[0].json["filterGroups"][0]["filters"] == [
        {"propertyName": "email", "operator": "EQ", "value": "ana.garcia@example.com"}]
    assert hubspot.requests[1].headers["authorization"] == "Bearer pat-eu1-test-token"
    stored = hubspot.contacts[contact_id]["properties"]
    assert stored | {"hs_object_id": ""} == {"email": "ana.garcia@example.com", "firstname": "Ana",
                                             "lastname": "García", "phone": "+34600123456", "hs_object_id": ""}


def test_contact_found_by_search_is_patched(hubspot, make_crm):
    existing = hubspot.add_contact("ana.garcia@example.com", firstname="Anita", company="CEP")

    assert make_crm().upsert_lead(ANA) == existing
    assert calls(hubspot) == ["POST /crm/v3/objects/contacts/search", f"PATCH /crm/v3/objects/contacts/{existing}"]
    assert hubspot.contacts[existing]["properties"]["firstname"] == "Ana"
    assert hubspot.contacts[existing]["properties"]["company"] == "CEP"  # untouched
    assert len(hubspot.contacts) == 1


def test_empty_fields_do_not_blank_what_hubspot_has(hubspot, make_crm):
    existing = hubspot.add_contact("ana.garcia@example.com", phone="+34911222333")
    make_crm().upsert_lead(Contact(email="ana.garcia@example.com", first_name="Ana"))
    assert hubspot.requests[-1].json == {"properties": {"email": "ana.garcia@example.com", "firstname": "Ana"}}
    assert hubspot.contacts[existing]["properties"]["phone"] == "+34911222333"


def test_409_when_search_lags_parses_the_existing_id_and_patches(hubspot, make_crm):
    # Given a contact created moments ago, which HubSpot's search index does not show yet
    existing = hubspot.add_contact("ana.garcia@example.com", indexed=False)
    # When the lead is upserted
    contact_id = make_crm().upsert_lead(ANA)
    # Then the create meets 409 "Existing ID: …", and that contact is PATCHed
    assert contact_id == existing
    assert calls(hubspot) == ["POST /crm/v3/objects/contacts/search", "POST /crm/v3/objects/contacts",
                              f"PATCH /crm/v3/objects/contacts/{existing}"]
    assert hubspot.contacts[existing]["properties"]["lastname"] == "García"


def test_replay_right_after_a_create_updates_the_same_contact(hubspot, make_crm):
    crm = make_crm()
    first = crm.upsert_lead(ANA)
    second = crm.upsert_lead(Contact(email="ana.garcia@example.com", phone="+34600999888"))
    hubspot.reindex()
    third = crm.upsert_lead(ANA)

    assert first == second == third and len(hubspot.contacts) == 1
    assert calls(hubspot)[-2:] == ["POST /crm/v3/objects/contacts/search", f"PATCH /crm/v3/objects/contacts/{first}"]


def test_409_without_an_id_is_permanent(hubspot, make_crm):
    hubspot.fail_next(200, {"total": 0, "results": []})
    hubspot.fail_next(409, {"status": "error", "message": "Conflict", "category": "CONFLICT", "correlationId": "x"})
    with pytest.raises(PermanentError, match="409 CONFLICT"):
        make_crm().upsert_lead(ANA)


@pytest.mark.parametrize("policy, expected", [("SECONDLY", 10), ("TEN_SECONDLY_ROLLING", 10), ("DAILY", 3600)])
def test_rate_limit_is_transient_with_a_wait_by_policy(hubspot, make_crm, policy, expected):
    hubspot.rate_limit(policy)
    with pytest.raises(TransientError, match="RATE_LIMIT") as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == expected


def test_rate_limit_honours_retry_after(hubspot, make_crm):
    hubspot.rate_limit("DAILY", retry_after=7)
    with pytest.raises(TransientError) as error:
        make_crm().upsert_lead(ANA)
    assert error.value.retry_after == 7


def test_rate_limit_on_the_create_after_a_search(hubspot, make_crm):
    hubspot.fail_next(200, {"total": 0, "results": []})
    hubspot.rate_limit("TEN_SECONDLY_ROLLING")
    with pytest.raises(TransientError):
        make_crm().upsert_lead(ANA)
    assert hubspot.contacts == {}


@pytest.mark.parametrize("category", ["EXPIRED_AUTHENTICATION", "INVALID_AUTHENTICATION"])
def test_401_is_permanent(hubspot, make_crm, category):
    hubspot.fail_auth(category)
    with pytest.raises(PermanentError, match=f"HTTP 401 {category}"):
        make_crm().upsert_lead(ANA)


def test_wrong_token_is_refused_by_the_fake(hubspot, make_crm):
    with pytest.raises(PermanentError, match="INVALID_AUTHENTICATION"):
        make_crm(token="wrong").upsert_lead(ANA)


def test_invalid_property_is_permanent(hubspot, make_crm):
    with pytest.raises(PermanentError, match="400 VALIDATION_ERROR"):
        make_crm().upsert_lead(Contact(email="ana@invalid"))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient_and_the_retry_succeeds(hubspot, make_crm, status):
    hubspot.fail_server(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        make_crm().upsert_lead(ANA)
    assert make_crm().upsert_lead(ANA) in hubspot.contacts


def test_timeout_is_transient(hubspot, make_crm):
    hubspot.fail_next(200, {"total": 0, "results": []}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        make_crm(timeout=(1, 0.2)).upsert_lead(ANA)


def test_lead_without_email_is_permanent_and_sends_nothing(hubspot, make_crm):
    with pytest.raises(PermanentError, match="no email"):
        make_crm().upsert_lead(Contact(email=" ", phone="+34600123456"))
    assert hubspot.requests == []


def test_logs_and_errors_hold_no_token_or_email(hubspot, make_crm, caplog):
    caplog.set_level(logging.DEBUG)
    hubspot.fail_next(400, {"status": "error", "category": "VALIDATION_ERROR", "correlationId": "x",
                            "message": "Property values were not valid: ana.garcia@example.com"})
    with pytest.raises(PermanentError) as error:
        make_crm().upsert_lead(ANA)
    for text in (caplog.text, str(error.value)):
        assert "pat-eu1-test-token" not in text and "ana.garcia@example.com" not in text.lower()


def test_disabled_without_token(no_hubspot_env):
    crm = cep_automation_hubspot.HubSpotCRM(cep_automation_hubspot.HubSpotSettings())
    assert not crm.enabled
    assert crm.disabled_reason() == "not configured: set HUBSPOT_TOKEN"


def test_hook_reads_the_hubspot_variables(no_hubspot_env, monkeypatch, hubspot):
    registered = []
    cep_automation_hubspot.register_integrations(register=registered.append)
    assert [(i.kind, i.name, i.enabled) for i in registered] == [("crm", "hubspot", False)]

    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-eu1-test-token")
    monkeypatch.setenv("HUBSPOT_BASE_URL", hubspot.url)
    cep_automation_hubspot.register_integrations(register=registered.append)
    assert registered[-1].enabled and registered[-1].settings.base_url == hubspot.url
    assert registered[-1].upsert_lead(ANA) in hubspot.contacts


def test_plugin_registered_with_the_manager_provides_crm_hubspot(no_hubspot_env, settings_for):
    reset_plugins()
    get_plugin_manager().register(cep_automation_hubspot, name="hubspot")
    try:
        registry = collect_integrations(settings_for())
        assert registry.entries[("crm", "hubspot")].plugin == "hubspot"
        assert "HUBSPOT_TOKEN" in registry.get("crm", "hubspot").disabled_reason()
    finally:
        reset_plugins()
        load_plugins(settings_for())
