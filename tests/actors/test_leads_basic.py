"""lead.created with no integration configured: every step says why it was skipped, never "success"."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from cep_automation.actors import lead_created
from cep_automation.actors.leads import live_stats_key, whatsapp_template
from cep_automation.errors import PayloadError
from cep_automation.records import job_state
from cep_automation.runtime.integrations import reset_registry


@pytest.fixture(autouse=True)
def fresh_integrations():
    reset_registry()
    yield
    reset_registry()


def make_lead(db, consent=True, campus=True, email="ana@example.com", phone="+34600123456"):
    campus_id = db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                           " RETURNING id").fetchone()["id"] if campus else None
    course = db.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', 'desempleados')"
                        " RETURNING id").fetchone()["id"]
    run = db.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                     (course, campus_id)).fetchone()["id"]
    return db.execute(
        "INSERT INTO leads (name, email, phone, course_run_id, consent_at, created_at)"
        " VALUES ('Ana García', %s, %s, %s, CASE WHEN %s THEN now() END, '2026-11-24T10:00:00Z') RETURNING id::text",
        (email, phone, run, consent)).fetchone()["id"]


def test_templates_by_offer_type():
    assert whatsapp_template("desempleados") == "lead_confirmation_desempleados"
    assert whatsapp_template("becas") == whatsapp_template(None) == "lead_confirmation_generic"


def test_unconfigured_services_are_skipped_with_reasons(db, redis_client):
    lead_id = make_lead(db)
    result = lead_created(lead_id)
    steps = result["steps"]
    assert steps["live_stats"] == {"status": "success"}
    for step in ("mailchimp", "whatsapp_lead", "confirmation_email", "whatsapp_advisor", "crm"):
        assert steps[step]["status"] == "skipped", step
    assert steps["crm"]["detail"] == "CRM_ENABLED is false"
    assert redis_client.hgetall(live_stats_key(dt.date(2026, 11, 24)))


def test_no_consent_skips_marketing(db, redis_client):
    steps = lead_created(make_lead(db, consent=False))["steps"]
    assert steps["mailchimp"] == steps["whatsapp_lead"] == {"status": "skipped",
                                                            "detail": "no recorded consent (RGPD)"}


def test_telematico_lead_without_advisor(db, redis_client):
    steps = lead_created(make_lead(db, campus=False))["steps"]
    assert steps["whatsapp_advisor"] == {"status": "skipped", "detail": "campus Telemático has no advisor phone"}


def test_live_counter_counts_once_per_lead(db, redis_client):
    lead_id = make_lead(db)
    lead_created(lead_id)
    lead_created(lead_id)  # a second run (a retry) replays the ledger
    counts = redis_client.hgetall(live_stats_key(dt.date(2026, 11, 24)))
    assert sum(int(v) for v in counts.values()) == 1


def test_unknown_lead_goes_to_dead_letters(db, stub_broker, stub_worker):
    message = lead_created.send(lead_id=str(uuid.uuid4()))
    stub_broker.join("leads", fail_fast=False)
    stub_worker.join()
    letter = db.execute("SELECT error_type, error_message, attempts FROM dead_letters").fetchone()
    assert letter["error_type"] == "PermanentError" and "not found" in letter["error_message"]
    assert letter["attempts"] == 1
    assert job_state.get_job(message.message_id).state == "dead"


def test_payload_must_be_a_uuid(stub_broker):
    with pytest.raises(PayloadError, match="lead_id"):
        lead_created.send(lead_id="42")


def test_same_lead_enqueued_twice_is_one_job(db, stub_broker):
    lead_id = make_lead(db)
    assert lead_created.send(lead_id=lead_id).message_id == lead_created.send(lead_id=lead_id).message_id
