"""Tracing and error reports against local receivers: an OTLP/HTTP collector that decodes the protobuf export,
and a Sentry envelope endpoint. Real processes: the HTTP service and a worker pool, on the real Redis broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from livekit import API_TOKEN

from cep_automation.testing import wait_for

pytest.importorskip("opentelemetry.proto", reason="the otel extra is not installed")
pytest.importorskip("sentry_sdk", reason="the sentry extra is not installed")

from cep_automation.testing.fake_otlp import FakeOtlpCollector  # noqa: E402
from cep_automation.testing.fake_sentry import FakeSentry  # noqa: E402

HERE = Path(__file__).parent
EMAIL, PHONE = "ana.garcia@example.com", "+34600123456"


def make_lead(db):
    campus = db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                        " RETURNING id").fetchone()["id"]
    course = db.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', 'desempleados')"
                        " RETURNING id").fetchone()["id"]
    run = db.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                     (course, campus)).fetchone()["id"]
    return db.execute("INSERT INTO leads (name, email, phone, source, course_run_id, consent_at)"
                      " VALUES ('Ana García', %s, %s, 'web', %s, now()) RETURNING id::text",
                      (EMAIL, PHONE, run)).fetchone()["id"]


def post_job(url, job, payload):
    request = urllib.request.Request(f"{url}/v1/jobs/{job}", data=json.dumps(payload).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {API_TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def collector():
    with FakeOtlpCollector() as fake:
        yield fake


def test_one_lead_is_one_trace_from_http_ingress_to_the_last_provider_call(db, sandbox, collector, deploy_env, live):
    # Given the HTTP service and a worker pool, each exporting its spans to the local OTLP collector
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    service, url = live.http(deploy_env(**sandbox.env(), **otel, OTEL_SERVICE_NAME="cep-http"))
    service.wait_answers(f"{url}/health")
    live.pool(deploy_env(**sandbox.env(), **otel, OTEL_SERVICE_NAME="cep-worker"), "leads")
    lead_id = make_lead(db)
    # When the CMS posts one lead.created
    message_id = post_job(url, "lead.created", {"lead_id": lead_id})["message_id"]

    def processed():
        assert service.proc.poll() is None
        return [s for s in collector.spans if s.name == "process lead.created"]

    # Then every span, from the ingress to the worker's last provider call, is in one trace
    wait_for(processed, timeout=90, what="the worker's span")
    spans = collector.spans
    ingress = next(s for s in spans if s.name == "POST /v1/jobs/lead.created")
    trace = [s for s in spans if s.trace_id == ingress.trace_id]
    names = {s.name for s in trace}
    assert {"enqueue lead.created", "process lead.created"} <= names
    assert {s.service for s in trace} == {"cep-http", "cep-worker"}
    steps = [s for s in trace if s.name.startswith("step ")]
    calls = [s for s in trace if s.kind == 3]  # CLIENT: the HTTP calls to the fake providers
    assert len(steps) >= 3 and len(calls) >= 3
    assert {s.attributes["server.address"] for s in calls} == {"127.0.0.1"}
    process = next(s for s in trace if s.name == "process lead.created")
    assert process.attributes["messaging.message.id"] == message_id
    # one tree: a single root (the ingress), every other span's parent in the trace
    ids = {s.span_id for s in trace}
    assert [s.name for s in trace if s.parent_id not in ids] == [ingress.name] and ingress.parent_id == ""
    every_call = [s for s in spans if s.kind == 3]
    assert every_call == calls  # no provider call outside the lead's trace
    assert EMAIL not in json.dumps([s.attributes for s in spans]) and "600123456" not in json.dumps(
        [s.attributes for s in spans])


def test_a_dead_letter_is_one_sentry_envelope_without_email_or_phone(db, deploy_env, live, redis_client):
    with FakeSentry() as sentry:
        # Given a worker reporting to the local Sentry endpoint
        env = deploy_env(SENTRY_DSN=sentry.dsn(), PYTHONPATH=os.pathsep.join(
            filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        live.pool(env, "leads", modules=("telemetry_actors",))
        # When a job with an email and a phone in its payload and its error crashes and is dead-lettered
        send = ("import sys; from cep_automation.actors import broker; import telemetry_actors;"
                f"telemetry_actors.crash.send(email={EMAIL!r}, phone={PHONE!r})")
        subprocess.run([sys.executable, "-c", send], env=env, check=True, timeout=60)
        wait_for(lambda: db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 1, timeout=60,
                 what="the dead letter")
        wait_for(lambda: sentry.envelopes, timeout=30, what="a Sentry envelope")
        # Then exactly one envelope, with the job's context, and no email or phone anywhere in it
        letter = db.execute("SELECT message_id FROM dead_letters").fetchone()
        time.sleep(1.0)  # room for a second envelope, were one sent
        assert len(sentry.envelopes) == 1
        text = sentry.envelopes[0]
        for secret in (EMAIL, PHONE, "600123456", "ana.garcia"):
            assert secret not in text
        event = sentry.events()[0]
        assert event["tags"]["job"] == "telemetry.crash" and event["tags"]["crashed"] == "yes"
        assert event["contexts"]["job"]["message_id"] == letter["message_id"]
        assert event["exception"]["values"][0]["type"] == "RuntimeError"
        assert "a***@example.com" in text
