"""lead.created against the fake third-party APIs: every step once, failures retried alone, dead letters."""

from __future__ import annotations

import hashlib

import pytest

from cep_automation.actors import lead_created
from cep_automation.records import job_state
from cep_automation.testing.sandbox import LIST_ID


def make_lead(db, consent=True, offer="desempleados", campus=True):
    campus_id = db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                           " RETURNING id").fetchone()["id"] if campus else None
    course = db.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', %s) RETURNING id",
                        (offer,)).fetchone()["id"]
    run = db.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                     (course, campus_id)).fetchone()["id"]
    return db.execute(
        "INSERT INTO leads (name, email, phone, source, course_run_id, consent_at)"
        " VALUES ('Ana García', ' Ana@Example.com ', '+34600123456', 'web', %s, CASE WHEN %s THEN now() END)"
        " RETURNING id::text", (run, consent)).fetchone()["id"]


def run(stub_broker, stub_worker, lead_id):
    message = lead_created.send(lead_id=lead_id)
    stub_broker.join("leads", fail_fast=False)
    stub_worker.join()
    return message


def test_every_step_runs_once(db, sandbox, stub_broker, stub_worker):
    lead_id = make_lead(db)
    message = run(stub_broker, stub_worker, lead_id)
    info = job_state.get_job(message.message_id)
    assert info.state == "completed" and info.progress == 100
    assert {s["status"] for s in info.result["steps"].values()} == {"success"}
    # Mailchimp: member by hash of the trimmed, lower-cased email, tags and merge fields
    member = sandbox.mailchimp.members[LIST_ID][hashlib.md5(b"ana@example.com").hexdigest()]
    assert member["merge_fields"]["COURSE"] == "Excel avanzado" and member["merge_fields"]["CAMPUS"] == "Sevilla"
    assert {t["name"] for t in member["tags"]} == {"lead", "desempleados"}
    # WhatsApp: the offer type's template to the lead, and the advisor notice
    sent = {(m["to"], m["template"]) for m in sandbox.whatsapp.messages}
    assert sent == {("34600123456", "lead_confirmation_desempleados"), ("34699000002", "lead_advisor_notice")}
    lead_message = next(m for m in sandbox.whatsapp.messages if m["to"] == "34600123456")
    assert lead_message["language"] == "es" and lead_message["params"] == ["Ana García", "Excel avanzado"]
    assert len(sandbox.mandrill.sent) == 1 and len(sandbox.crm.leads) == 1


def test_telematico_lead_has_no_advisor_and_campus_label(db, sandbox, stub_broker, stub_worker):
    lead_id = make_lead(db, offer="telematico", campus=False)
    info = job_state.get_job(run(stub_broker, stub_worker, lead_id).message_id)
    assert info.result["steps"]["whatsapp_advisor"]["status"] == "skipped"
    member = next(iter(sandbox.mailchimp.members[LIST_ID].values()))
    assert member["merge_fields"]["CAMPUS"] == "Telemático"
    assert [m["template"] for m in sandbox.whatsapp.messages] == ["lead_confirmation_telematico"]


def test_a_transient_failure_is_retried_alone(db, sandbox, stub_broker, stub_worker, flush_audit):
    # Given WhatsApp answers "service unavailable" once to the lead's message (Retry-After 0 keeps the test fast;
    # the steps run at once, so the fake picks the request by number, not by order)
    whatsapp, serve, failed = sandbox.whatsapp, sandbox.whatsapp.handle, []

    def once(request):
        if (request.json or {}).get("to") == "34600123456" and not failed:
            failed.append(request)
            return whatsapp.error(131000, headers={"Retry-After": "0"})
        return serve(request)

    whatsapp.handle = once
    lead_id = make_lead(db)
    message = run(stub_broker, stub_worker, lead_id)
    info = job_state.get_job(message.message_id)
    assert info.state == "completed" and info.attempt == 2
    # Then only the failed step was repeated: one member upsert, one email, one CRM post, two WhatsApps
    assert len([r for r in sandbox.mailchimp.requests if r.method == "PUT"]) == 1
    assert len(sandbox.mandrill.sent) == 1 and len(sandbox.whatsapp.messages) == 2
    assert len([r for r in sandbox.crm.requests if r.method == "POST"]) == 1
    flush_audit()
    audit = db.execute("SELECT status, metadata FROM audit_log WHERE entity_id = %s ORDER BY id", (lead_id,)).fetchall()
    assert [a["status"] for a in audit] == ["retried", "completed"]
    assert audit[0]["metadata"]["steps"]["whatsapp_lead"]["status"] == "failed"
    assert audit[1]["metadata"]["steps"]["mailchimp"] == {"status": "success", "detail": "done in an earlier attempt"}


def test_permanent_failure_goes_to_dead_letters_with_each_step(db, sandbox, stub_broker, stub_worker, flush_audit):
    # Given the lead's number is not on WhatsApp (131026 is permanent); the advisor's is (the steps run at once,
    # so the fake refuses by number, not by the order of requests)
    whatsapp, serve = sandbox.whatsapp, sandbox.whatsapp.handle
    whatsapp.handle = lambda request: (whatsapp.error(131026) if (request.json or {}).get("to") == "34600123456"
                                       else serve(request))
    lead_id = make_lead(db)
    message = run(stub_broker, stub_worker, lead_id)
    letter = db.execute("SELECT * FROM dead_letters WHERE message_id = %s", (message.message_id,)).fetchone()
    assert letter["attempts"] == 1 and letter["error_type"] == "PermanentError"
    assert "whatsapp_lead" in letter["error_message"] and "131026" in letter["error_message"]
    assert "600123456" not in letter["error_message"]  # phones masked
    flush_audit()
    steps = db.execute("SELECT metadata FROM audit_log WHERE entity_id = %s", (lead_id,)).fetchone()["metadata"]
    assert steps["steps"]["mailchimp"]["status"] == "success"
    assert steps["steps"]["whatsapp_advisor"]["status"] == "success"


def test_no_consent_sends_no_marketing(db, sandbox, stub_broker, stub_worker):
    lead_id = make_lead(db, consent=False)
    info = job_state.get_job(run(stub_broker, stub_worker, lead_id).message_id)
    assert info.result["steps"]["mailchimp"]["status"] == "skipped"
    assert sandbox.mailchimp.members[LIST_ID] == {}
    assert [m["template"] for m in sandbox.whatsapp.messages] == ["lead_advisor_notice"]


@pytest.mark.slow
def test_lead_created_in_a_real_worker(db, sandbox, start_worker, process_env):
    import subprocess

    from cep_automation.testing import CLI, wait_for

    lead_id = make_lead(db)
    start_worker("leads")
    out = subprocess.run([*CLI, "enqueue", "lead.created", f"lead_id={lead_id}"], env=process_env(**sandbox.env()),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = wait_for(lambda: (j := job_state.get_job(out.stdout.strip())) and j.state == "completed" and j,
                    what="lead.created in a worker")
    assert info.result["steps"]["crm:webhook"]["status"] == "success"
    assert len(sandbox.whatsapp.messages) == 2
