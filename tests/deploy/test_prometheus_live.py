"""The shipped Prometheus rules and Grafana dashboard against a real Prometheus scraping live processes.

A worker pool and the HTTP service run as deployed (token on both /metrics); the pool works through a job
that completes, one retried, one dead-lettered and a duplicate, so every metric the dashboard names exists.
Prometheus loads ``contrib/deploy/prometheus/`` (config and rules) and must evaluate each rule, and answer
each dashboard query, without error.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from livekit import API_TOKEN, get
from promkit import Prometheus, dashboard_exprs, metric_names

from cep_automation.ops import THRESHOLDS
from cep_automation.ops.prometheus_rules import RECORDING_RULES
from cep_automation.records import job_state
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[1] / "middleware"
SYNTHETIC = {"up"}  # series Prometheus makes itself, never in a /metrics


def send(producer: RedisBroker, item: int, **kwargs: object) -> str:
    message = Message(queue_name="testing", actor_name="testing.steps", args=(), kwargs={"item": item, **kwargs},
                      options={"idempotency_key": f"deploy.steps:{item}"})
    return producer.enqueue(message).message_id


def run_jobs(env: dict[str, str], redis_url: str) -> None:
    """A completed job, one retried once, one dead-lettered, and a duplicate skipped."""
    producer = RedisBroker(url=redis_url, namespace=env["CEP_NAMESPACE"], middleware=[])
    item = 1_000 + secrets.randbelow(1_000_000)
    try:
        ids = [send(producer, item), send(producer, item + 1, fail={"crm": 1}),
               send(producer, item + 2, fail={"crm": 9}, permanent=True)]
        ended = ("completed", "dead", "failed")
        wait_for(lambda: all((j := job_state.get_job(i)) and j.state in ended for i in ids), timeout=90,
                 what="the jobs to end")
        duplicate = send(producer, item)
        wait_for(lambda: (j := job_state.get_job(duplicate)) and j.state == "skipped", timeout=60,
                 what="the duplicate to be skipped")
    finally:
        producer.close()


@pytest.fixture
def scraped(deploy_env, live, cep_services, db, tmp_path):
    """A pool and the HTTP service, worked and scraped by Prometheus: (prometheus, their /metrics texts)."""
    env = deploy_env(PYTHONPATH=os.pathsep.join(filter(None, [str(SAMPLES), os.environ.get("PYTHONPATH")])))
    pool = live.pool(env, "testing", modules=("sample_actors",))
    http, url = live.http(deploy_env())
    pool.wait_answers(f"http://127.0.0.1:{pool.port}/metrics")
    http.wait_answers(f"{url}/health")
    run_jobs(env, cep_services.redis_url)
    texts = [get(f"http://127.0.0.1:{pool.port}/metrics", API_TOKEN)[1], get(f"{url}/metrics", API_TOKEN)[1]]
    prom = Prometheus(tmp_path, API_TOKEN, {
        "cep-http": [(url.removeprefix("http://"), {})],
        "cep-pools": [(f"127.0.0.1:{pool.port}", {"pool": "automation"})],
    }).wait_ready()
    yield prom, "\n".join(texts)
    prom.stop()


def names_in(exposition: str) -> set[str]:
    """The sample names of a /metrics text."""
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def every_rule(prom: Prometheus) -> list[dict[str, object]]:
    return [rule for group in prom.api("rules")["groups"] for rule in group["rules"]]


def test_rules_and_dashboard_on_a_live_prometheus(scraped):
    prom, exposition = scraped
    # Given Prometheus scraping both targets, with the shipped rules loaded
    wait_for(lambda: {t["health"] for t in prom.api("targets")["activeTargets"]} == {"up"}, timeout=60,
             what="both targets to be scraped")
    # When every rule has been evaluated and the throughput rule has seen the jobs
    wait_for(lambda: all(not str(r["lastEvaluation"]).startswith("0001") for r in every_rule(prom))
             and prom.api("query", query="cep:jobs_processed:rate5m")["result"], timeout=60,
             what="the rules to evaluate on scraped samples")
    # Then no rule failed
    rules = every_rule(prom)
    assert {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"} == {}
    assert len(rules) == len(RECORDING_RULES) + len(THRESHOLDS)
    # And every dashboard query names only metrics the live /metrics serve (or recorded), and answers
    live_names, recorded = names_in(exposition), {record for record, _ in RECORDING_RULES}
    for expr in dashboard_exprs():
        unknown = metric_names(expr) - live_names - recorded - SYNTHETIC
        assert not unknown, f"{expr} reads metrics no /metrics serves: {unknown}"
        prom.api("query", query=expr)  # fails the test with Prometheus's parse or evaluation error
