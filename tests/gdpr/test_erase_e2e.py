"""The proof: a person seeded across every store is erased, then searched for everywhere — none left."""

from __future__ import annotations

import json
import logging

import psycopg
from gdprkit import EMAIL, NAME, PHONE, SURNAME, pg_dump_text, redis_dump, run_all
from psycopg.types.json import Jsonb

from cep_automation.actors import lead_created, stats_rollup
from cep_automation.actors.gdpr import request_erasure
from cep_automation.db.redis_client import key
from cep_automation.gdpr.records import journaled, load_erasure
from cep_automation.records import job_state
from cep_automation.records.job_state import writer

NEEDLES = (EMAIL.lower(), "611223344", "611 22 33 44", "ana.z@example.org", NAME, SURNAME)


def hits(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle.lower() in text.lower()]


def seed_other_stores(db, redis_client, lead_ids):
    """What older code or an operator may have left: unmasked text in dead letters, audit rows and Redis."""
    first = lead_ids[0]
    db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload, error_type, error_message, traceback)"
               " VALUES ('leads', 'lead.created', 'm-dead-1', %s, 'PermanentError', %s, %s)",
               (Jsonb({"lead_id": first}), f"hubspot: {EMAIL} rejected for {NAME}",
                f"Traceback ...\\nPermanentError: phone {PHONE} invalid"))
    db.execute("INSERT INTO audit_log (action, actor, queue, message_id, entity_type, entity_id, status, metadata)"
               " VALUES ('lead.automated', 'lead.created', 'leads', 'm-audit-1', 'lead', %s, 'dead', %s)",
               (first, Jsonb({"error": f"crm refused {EMAIL.lower()} / 611-22-33-44", "name": NAME})))
    db.execute("INSERT INTO effects (job_key, step, provider_id, result) VALUES (%s, 'crm:legacy', %s, %s)",
               (f"lead.created:{first}", "legacy-1", Jsonb({"echo": {"email": EMAIL, "name": NAME}})))
    job_state.record("m-job-1", "failed", actor="lead.created", error=f"{NAME} <{EMAIL}> bounced",
                     result={"lead_id": first})
    job_state.append_log("m-job-1", f"sending to {NAME}, {PHONE}")
    writer.flush()
    redis_client.set(key("idem", "sent", f"api:lead.created:{EMAIL}"), "m-x", ex=3600)
    redis_client.hset(key("effects", "held", f"lead.created:{lead_ids[1]}"), "crm:other",
                      json.dumps({"provider_id": None, "result": {"to": NAME}}))


def rollups(db):
    return [tuple(r.values()) for r in db.execute(
        "SELECT granularity, dimension, period_start, key_id, leads, consented FROM lead_rollups ORDER BY 1, 2, 3, 4")]


def test_erasure_leaves_no_trace_anywhere(person, db, sandbox, hubspot, stub_broker, stub_worker, flush_audit,
                                          redis_client, cep_services, pg_tools, caplog):
    caplog.set_level(logging.DEBUG)
    # Given a person with two leads followed up everywhere (Mailchimp, the webhook CRM, HubSpot, WhatsApp, email),
    # the rollups of their day, and older records that name them in every other store
    for lead_id in person:
        lead_created.send(lead_id=lead_id)
    run_all(stub_broker, stub_worker)
    day = db.execute("SELECT created_at::date AS d FROM leads LIMIT 1").fetchone()["d"]
    stats_rollup.send(date=day.isoformat())
    run_all(stub_broker, stub_worker, "stats")
    flush_audit()
    before = rollups(db)
    seed_other_stores(db, redis_client, person)
    assert sandbox.mailchimp.member("cep-leads", EMAIL) and len(sandbox.crm.leads) == 2 and len(hubspot.contacts) == 2
    assert hits(pg_dump_text(pg_tools, cep_services.database_url))

    # When the person is erased by one of their addresses
    request = request_erasure("email", EMAIL, via="test")
    run_all(stub_broker, stub_worker)
    flush_audit()
    writer.flush()

    # Then nothing of them is left: not in a full dump of the database, nor in any Redis key, nor in any log line,
    # nor at Mailchimp and the two CRMs
    assert hits(pg_dump_text(pg_tools, cep_services.database_url)) == []
    assert hits(redis_dump(redis_client, cep_services.namespace)) == []
    assert hits("\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records) + caplog.text) == []
    assert hits(json.dumps([sandbox.mailchimp.members, sandbox.crm.leads, hubspot.contacts], default=str)) == []
    assert sandbox.mailchimp.members["cep-leads"] == {} and sandbox.crm.leads == {} and hubspot.contacts == {}
    # and the statistics are what they were: the leads are still counted
    stats_rollup.send(date=day.isoformat())
    run_all(stub_broker, stub_worker, "stats")
    assert rollups(db) == before
    leads = db.execute("SELECT name, email, phone, consent_ip, consent_text, course_run_id, consent_at, erased_at"
                       " FROM leads").fetchall()
    assert all(r["email"] is None and r["phone"] is None and r["consent_text"] is None and r["erased_at"]
               and r["course_run_id"] and r["consent_at"] for r in leads) and len(leads) == 2

    # The erasure record says what was done where, by keyed hash only; the providers that cannot erase say so
    with psycopg.connect(cep_services.database_url, autocommit=True) as conn:
        from psycopg.rows import dict_row

        conn.row_factory = dict_row
        record = load_erasure(conn, request.erasure_id)
    assert record.status == "manual_action" and record.pending_subject is None
    assert sorted(record.lead_ids) == sorted(person) and len(record.subject_hashes) == 3  # 2 emails, 1 phone
    providers = record.outcomes["integrations"]
    assert providers["email_marketing:mailchimp"].startswith("erased: 2 of 2")
    assert providers["crm:webhook"].startswith("erased") and providers["crm:hubspot"].startswith("erased: 2 of 2")
    assert providers["messaging:whatsapp"].startswith("manual action needed")
    assert [r["id"] for r in journaled()] == [request.erasure_id]


def test_erasure_is_idempotent_and_retries_a_failed_provider_alone(person, db, sandbox, stub_broker, stub_worker):
    # Given the person is in Mailchimp and the CRM, and the CRM is down for the first attempt
    for lead_id in person:
        lead_created.send(lead_id=lead_id)
    run_all(stub_broker, stub_worker)
    sandbox.crm.fail_server(503, retry_after=0)
    deletes_before = len([r for r in sandbox.mailchimp.requests if r.path.endswith("delete-permanent")])

    # When the erasure runs (and is asked for again while it runs)
    first = request_erasure("phone", "611 22 33 44", via="test")
    again = request_erasure("phone", "+34611223344", via="test")
    run_all(stub_broker, stub_worker)

    # Then the CRM was retried and erased; Mailchimp was asked once (the ledger remembers it); one erasure in all
    assert again.erasure_id == first.erasure_id and again.deduplicated
    assert sandbox.crm.leads == {} and sandbox.mailchimp.members["cep-leads"] == {}
    deletes = [r for r in sandbox.mailchimp.requests if r.path.endswith("delete-permanent")]
    assert len(deletes) - deletes_before == 2
    info = job_state.get_job(first.message_id)
    assert info.state == "completed" and info.attempt == 2
    # And a later request for the same person is a new erasure that finds nothing left and changes nothing
    later = request_erasure("email", "ana.z@example.org", via="test")
    run_all(stub_broker, stub_worker)
    assert later.erasure_id != first.erasure_id
    assert job_state.get_job(later.message_id).result["outcomes"]["database"]["leads_anonymized"] == 0
