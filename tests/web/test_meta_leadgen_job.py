"""The meta.leadgen job called directly: what it stores, that it stores once, and what it needs."""

from __future__ import annotations

import json

import pytest

from cep_automation.actors import meta_leadgen
from cep_automation.errors import PayloadError, PermanentError
from cep_automation.runtime.integrations import reset_registry
from cep_automation.settings import get_settings
from cep_automation.testing.fake_meta import FakeMetaGraph

PAGE_TOKEN = "EAAGpageTokenForJobTests"
PAYLOAD = {"page_id": "1029384756", "form_id": "5556667778", "created_time": 1759914567}


@pytest.fixture
def graph(monkeypatch):
    with FakeMetaGraph(PAGE_TOKEN) as fake:
        monkeypatch.setenv("META_ACCESS_TOKEN", PAGE_TOKEN)
        monkeypatch.setenv("META_GRAPH_BASE_URL", fake.base_url)
        get_settings.cache_clear()
        reset_registry()
        yield fake
    get_settings.cache_clear()
    reset_registry()


def lead_messages(stub_broker):
    if "leads" not in stub_broker.queues:
        return []
    return [json.loads(m) for m in stub_broker.queues["leads"].queue]


def test_new_lead_is_stored_and_followed_up_once(db, stub_broker, graph, cep_services):
    leadgen_id = graph.add_lead({"first_name": "Luis", "last_name": "Pérez", "email": "luis@example.com"},
                                ad_id=None, campaign_id=None, is_organic=True)
    first = meta_leadgen(leadgen_id=leadgen_id, **PAYLOAD)
    assert first["created"] is True
    lead = db.execute("SELECT name, email, phone, campaign_id, source, consent_at FROM leads").fetchone()
    assert lead == {"name": "Luis Pérez", "email": "luis@example.com", "phone": None, "campaign_id": None,
                    "source": "meta", "consent_at": lead["consent_at"]} and lead["consent_at"] is not None
    # A second run after the enqueue claims expired: same lead, and no second lead.created
    cep_services.flush_redis()
    second = meta_leadgen(leadgen_id=leadgen_id, **PAYLOAD)
    assert second == {**first, "created": False}
    assert db.execute("SELECT count(*) AS n FROM leads").fetchone()["n"] == 1
    messages = lead_messages(stub_broker)
    assert [(m["actor_name"], m["kwargs"]) for m in messages] == [("lead.created", {"lead_id": first["lead_id"]})]


def test_lead_without_a_name_gets_one_from_its_id(db, stub_broker, graph):
    leadgen_id = graph.add_lead({"phone_number": "+34 611 222 333"})
    result = meta_leadgen(leadgen_id=leadgen_id, **PAYLOAD)
    lead = db.execute("SELECT name, phone FROM leads WHERE id = %s", (result["lead_id"],)).fetchone()
    assert lead == {"name": f"Meta lead {leadgen_id}", "phone": "+34 611 222 333"}


def test_without_an_ads_integration_it_is_permanent_and_names_the_setting(db, stub_broker, monkeypatch):
    monkeypatch.delenv("META_ACCESS_TOKEN", raising=False)
    get_settings.cache_clear()
    reset_registry()
    try:
        with pytest.raises(PermanentError, match="META_ACCESS_TOKEN"):
            meta_leadgen(leadgen_id="123", **PAYLOAD)
    finally:
        reset_registry()


def test_ids_must_be_numeric_before_they_reach_a_graph_url(stub_broker):
    with pytest.raises(PayloadError, match="leadgen_id"):
        meta_leadgen.send(leadgen_id="../me/accounts", **PAYLOAD)


def test_an_attempt_that_died_between_insert_and_enqueue_is_made_good(db, stub_broker, graph):
    # Given the state a crash leaves: the lead stored by an earlier attempt, and no lead.created sent
    from cep_automation.actors.meta_leads import external_id, lead_row, store_lead

    leadgen_id = graph.add_lead({"full_name": "Eva Ruiz", "email": "eva@example.com"}, ad_id=None,
                                campaign_id=None, is_organic=True)
    lead_id, created = store_lead(db, lead_row({"field_data": {"full_name": "Eva Ruiz"}}, leadgen_id, "5556667778",
                                               1759914567))
    assert created and lead_messages(stub_broker) == []
    # When the job runs again (its redelivery)
    result = meta_leadgen(leadgen_id=leadgen_id, **PAYLOAD)
    # Then it finds the lead stored and still enqueues its follow-up, once
    assert result == {"lead_id": lead_id, "created": False, "leadgen_id": leadgen_id}
    assert db.execute("SELECT count(*) AS n FROM leads WHERE external_id = %s",
                      (external_id(leadgen_id),)).fetchone()["n"] == 1
    messages = lead_messages(stub_broker)
    assert [(m["actor_name"], m["kwargs"]) for m in messages] == [("lead.created", {"lead_id": lead_id})]
