"""`cep-automation serve` as a real process on the Redis broker, with a real worker running what it enqueues."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from cep_automation.testing import CLI, wait_for

pytestmark = pytest.mark.slow


def test_enqueued_job_runs_on_a_worker_and_its_status_is_served(serve_process, start_worker, secrets):
    url, _ = serve_process()
    start_worker("stats")
    auth = {"Authorization": f"Bearer {secrets.api}"}
    accepted = httpx.post(f"{url}/v1/jobs/stats.rollup", json={"date": "2026-11-10", "granularity": "daily"},
                          headers=auth)
    assert accepted.status_code == 202, accepted.text
    message_id = accepted.json()["message_id"]
    done = wait_for(lambda: (j := httpx.get(f"{url}/v1/jobs/{message_id}", headers=auth).json())
                    .get("state") == "completed" and j, what="the job to complete")
    assert done["result"]["date"] == "2026-11-10" and done["progress"] == 100
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_access_log_never_shows_the_verify_token(serve_process, secrets):
    url, log = serve_process()
    params = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": secrets.verify}
    assert httpx.get(f"{url}/webhooks/meta/leads", params=params).text == "42"
    wait_for(lambda: "/webhooks/meta/leads" in log.read_text(), what="the access log line")
    text = log.read_text()
    assert secrets.verify not in text and "hub.verify_token=***" in text


def test_serve_refuses_the_stub_broker(process_env):
    stub = subprocess.run([*CLI, "serve", "--port", "8000"], env=process_env("stub://"), capture_output=True,
                          text=True, timeout=60)
    assert stub.returncode == 2 and "BROKER_URL=stub://" in stub.stderr


def test_serve_without_a_token_warns_and_stays_closed(serve_process, secrets):
    url, log = serve_process(CEP_API_TOKEN="")
    assert "warning: CEP_API_TOKEN is not set" in log.read_text()
    response = httpx.get(f"{url}/v1/jobs/x", headers={"Authorization": f"Bearer {secrets.api}"})
    assert response.status_code == 503 and "CEP_API_TOKEN is not set" in response.json()["error"]
