"""Sequences through the real code path on the stub broker: lead.created enters nurture, each step is a held job
released by ``schedules.release`` and run by ``sequence.step`` against the fake providers."""

from __future__ import annotations

import datetime as dt

import pytest

from cep_automation.actors import lead_created
from cep_automation.gdpr import record_consent
from cep_automation.records import metrics, scheduled_jobs
from cep_automation.records import sequence_counts as counters
from cep_automation.runtime.scheduling import release_due
from cep_automation.sequences import lifecycle
from cep_automation.testing.sequences import bring_due, steps_by_name

pytestmark = pytest.mark.usefixtures("always_open")


def run_due(broker, worker):
    release_due()
    broker.join("leads", fail_fast=False)
    worker.join()


def enrolled(db, make_lead, **kwargs):
    lead_id = make_lead(**kwargs)
    result = lead_created(lead_id)
    assert result["steps"]["sequences"]["status"] == "success", result
    return lead_id


def test_lead_created_enters_nurture_with_every_step_held_in_postgresql(db, sandbox, stub_broker, make_lead):
    lead_id = enrolled(db, make_lead, starts_in=30)
    steps = steps_by_name(db, lead_id)
    assert sorted(steps) == ["course_start/day_before", "course_start/week_before", "nurture/course_details",
                             "nurture/last_call", "nurture/whatsapp_reminder"]
    assert {s["status"] for s in steps.values()} == {"pending"}
    held = {row["message_id"]: row for row in scheduled_jobs.list_waiting(db, limit=10)}
    assert set(held) == {s["message_id"] for s in steps.values()}
    details = steps["nurture/course_details"]["due_at"]
    assert dt.timedelta(days=1) < details - dt.datetime.now(dt.UTC) < dt.timedelta(days=3)
    assert counters.read()[("entries", "nurture")] == 1
    # And a second lead.created run (a retry) does not enter twice
    assert lifecycle.enter(db, lead_id, "nurture").reason == "already in this sequence"


def test_without_consent_no_sequence(db, sandbox, stub_broker, make_lead):
    lead_id = make_lead(consent=False)
    assert lead_created(lead_id)["steps"]["sequences"] == {"status": "skipped", "detail": "no recorded consent (RGPD)"}
    assert steps_by_name(db, lead_id) == {}


def test_a_lead_goes_through_nurture_step_by_step(db, sandbox, stub_broker, stub_worker, make_lead):
    lead_id = enrolled(db, make_lead, starts_in=30)
    bring_due(db, lead_id, "course_details")
    run_due(stub_broker, stub_worker)
    emails = [m for m in sandbox.mandrill.sent if m["template_name"] == "nurture-course-details"]
    assert len(emails) == 1
    merge = {v["name"]: v["content"] for v in emails[0]["message"]["global_merge_vars"]}
    assert merge["NAME"] == "Ana" and merge["COURSE"] == "Excel avanzado" and merge["CAMPUS"] == "Sevilla"
    bring_due(db, lead_id, "whatsapp_reminder")
    run_due(stub_broker, stub_worker)
    reminders = [m for m in sandbox.whatsapp.messages if m.get("template") == "nurture_reminder"]
    assert len(reminders) == 1 and reminders[0]["params"] == ["Ana", "Excel avanzado"]
    bring_due(db, lead_id, "last_call")
    run_due(stub_broker, stub_worker)
    steps = steps_by_name(db, lead_id)
    assert [steps[f"nurture/{n}"]["status"] for n in ("course_details", "whatsapp_reminder", "last_call")] == \
        ["sent", "sent", "sent"]
    state = db.execute("SELECT status FROM sequence_enrollments WHERE lead_id = %s AND sequence = 'nurture'",
                       (lead_id,)).fetchone()
    assert state["status"] == "completed"
    # A released job run again (a duplicate delivery) sends nothing more
    run_due(stub_broker, stub_worker)
    assert len([m for m in sandbox.mandrill.sent if m["template_name"] == "nurture-course-details"]) == 1


def test_enrolling_mid_way_cancels_the_rest_at_once(db, sandbox, stub_broker, stub_worker, make_lead):
    lead_id = enrolled(db, make_lead, starts_in=30)
    bring_due(db, lead_id, "course_details")
    run_due(stub_broker, stub_worker)
    with db.transaction():
        _, cancelled = lifecycle.set_status(db, lead_id, "enrolled")
    assert cancelled == 4  # two of nurture, two of course_start
    steps = steps_by_name(db, lead_id)
    assert steps["nurture/course_details"]["status"] == "sent"
    assert {steps[n]["status"] for n in steps if n != "nurture/course_details"} == {"cancelled"}
    assert scheduled_jobs.list_waiting(db) == []
    # Even a step whose job was already released sends nothing once the lead has left
    before = len(sandbox.whatsapp.messages)
    bring_due(db, lead_id)
    run_due(stub_broker, stub_worker)
    assert len(sandbox.whatsapp.messages) == before
    assert counters.read()[("exits", "nurture", "enrolled")] == 1
    text = metrics.render()[0].decode()
    assert 'sequence_exits_total{cause="enrolled",sequence="nurture"} 1.0' in text
    assert 'sequence_entries_total{sequence="nurture"} 1.0' in text
    assert 'sequence_steps_total{sequence="nurture",status="sent"} 1.0' in text
    assert 'sequence_steps_total{sequence="course_start",status="failed"} 0.0' in text


def test_a_transient_failure_retries_the_step_alone_and_never_sends_twice(db, sandbox, stub_broker, stub_worker,
                                                                          make_lead):
    lead_id = enrolled(db, make_lead)
    sandbox.mandrill.fail_with("GeneralError", status=500, times=1)
    bring_due(db, lead_id, "course_details")
    release_due()
    stub_broker.join("leads", fail_fast=False)
    stub_worker.join()
    step = steps_by_name(db, lead_id)["nurture/course_details"]
    assert step["status"] == "sent" and step["attempts"] == 2
    assert len([m for m in sandbox.mandrill.sent if m["template_name"] == "nurture-course-details"]) == 1
    assert [m for m in sandbox.whatsapp.messages if m.get("template") == "nurture_reminder"] == []


def test_pause_holds_the_steps_and_resume_brings_them_back(db, sandbox, stub_broker, stub_worker, make_lead):
    lead_id = enrolled(db, make_lead)
    old = steps_by_name(db, lead_id)["nurture/course_details"]["message_id"]
    with db.transaction():
        assert lifecycle.pause(db, lead_id) == 1
    assert scheduled_jobs.get(db, old)["status"] == "cancelled"
    bring_due(db, lead_id, "course_details")
    run_due(stub_broker, stub_worker)
    assert sandbox.mandrill.sent == [m for m in sandbox.mandrill.sent if m["template_name"] == "lead-confirmation"]
    with db.transaction():
        assert lifecycle.resume(db, lead_id) == 1
    step = steps_by_name(db, lead_id)["nurture/course_details"]
    assert step["message_id"] != old and step["detail"] == "resumed"
    assert step["due_at"] <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)  # its time had passed: now
    run_due(stub_broker, stub_worker)
    assert steps_by_name(db, lead_id)["nurture/course_details"]["status"] == "sent"


def test_withdrawing_consent_cancels_every_pending_step(db, sandbox, stub_broker, make_lead):
    lead_id = enrolled(db, make_lead, starts_in=30)
    record_consent(db, lead_id, "withdrawn", "test")
    steps = steps_by_name(db, lead_id)
    assert {s["status"] for s in steps.values()} == {"cancelled"}
    assert {s["detail"] for s in steps.values()} == {"consent_withdrawn"}
    assert scheduled_jobs.list_waiting(db) == []


def test_conditions_skip_a_step_saying_why(db, sandbox, stub_broker, stub_worker, make_lead):
    lead_id = enrolled(db, make_lead, phone=None)
    bring_due(db, lead_id, "whatsapp_reminder")
    run_due(stub_broker, stub_worker)
    step = steps_by_name(db, lead_id)["nurture/whatsapp_reminder"]
    assert step["status"] == "skipped" and step["detail"] == "the lead has no phone"
    assert counters.read()[("steps", "nurture", "skipped")] == 1
