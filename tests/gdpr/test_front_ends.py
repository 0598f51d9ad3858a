"""The GDPR front-ends: ``POST /v1/gdpr/erasures``, ``GET /v1/gdpr/subjects``, ``cep-automation gdpr erase|export``."""

from __future__ import annotations

import json
import subprocess

from click.testing import CliRunner
from gdprkit import EMAIL, NAME, run_all

from cep_automation.actors import lead_created
from cep_automation.cli import cli
from cep_automation.testing.processes import CLI


def test_http_erasure_answers_202_with_the_message_id_and_never_queues_the_email(person, api, stub_broker,
                                                                                  stub_worker, db):
    answer = api.post("/v1/gdpr/erasures", json={"email": EMAIL})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["message_id"] and body["actor"] == "gdpr.erase" and body["deduplicated"] is False
    queued = [m for m in stub_broker.queues["leads"].queue]
    assert all(EMAIL.lower() not in m.decode().lower() for m in queued)  # the job carries the erasure id only
    run_all(stub_broker, stub_worker)
    job = api.get(f"/v1/jobs/{body['message_id']}").json()
    assert job["state"] == "completed" and job["result"]["status"] in ("completed", "manual_action")


def test_http_erasure_errors(api):
    assert api.post("/v1/gdpr/erasures", json={}).status_code == 422
    both = api.post("/v1/gdpr/erasures", json={"email": EMAIL, "phone": "611223344"})
    assert both.status_code == 422 and "exactly one" in both.json()["error"]
    bad = api.post("/v1/gdpr/erasures", json={"email": "not-an-address"})
    assert bad.status_code == 422 and bad.json()["errors"] == ["email: not an email address (expected name@domain.tld)"]
    assert api.post("/v1/gdpr/erasures", json={"lead_id": 7}).status_code == 422


def test_http_access_export_lists_everything_we_hold(person, api, sandbox, stub_broker, stub_worker, flush_audit, db):
    lead_created.send(lead_id=person[0])
    run_all(stub_broker, stub_worker)
    flush_audit()
    api.post(f"/v1/leads/{person[1]}/consent", json={"state": "withdrawn", "source": "phone call"})
    answer = api.get("/v1/gdpr/subjects", params={"email": EMAIL})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    export = answer.json()
    assert sorted(lead["id"] for lead in export["leads"]) == sorted(person)  # the second one found by phone
    assert {lead["name"] for lead in export["leads"]} == {NAME} and export["leads"][0]["course"] == "Excel avanzado"
    assert [(c["state"], c["source"]) for c in export["consent"]] == [("withdrawn", "phone call")]
    assert {m["step"] for m in export["messages"]} >= {"mailchimp", "whatsapp_lead", "confirmation_email"}
    assert [a["action"] for a in export["audit"]] == ["lead.automated"] and export["sequences"] == []
    assert api.get("/v1/gdpr/subjects").status_code == 422


def test_cli_erase_waits_and_reports_manual_action(person, sandbox, stub_broker, stub_worker, db):
    result = CliRunner().invoke(cli, ["gdpr", "erase", "--lead", person[1], "--wait", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    record = json.loads("\n".join(lines[1:]))
    assert record["status"] == "manual_action" and sorted(record["lead_ids"]) == sorted(person)
    assert "messaging:whatsapp: manual action needed" in result.stderr
    assert EMAIL.lower() not in result.output.lower()


def test_cli_export_and_operator_errors(person, process_env):
    out = subprocess.run([*CLI, "gdpr", "export", "--email", EMAIL.upper()], env=process_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["leads"]) == 2
    none = subprocess.run([*CLI, "gdpr", "erase"], env=process_env(), capture_output=True, text=True, timeout=120)
    assert none.returncode == 2 and "exactly one of --email, --phone or --lead" in none.stderr
    bad = subprocess.run([*CLI, "gdpr", "erase", "--phone", "12"], env=process_env(), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: phone: not a phone number (expected 9 digits, or + " \
                                                         "and 8 to 15 digits)"
