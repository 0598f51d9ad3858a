"""The Kubernetes manifests: valid against the Kubernetes schemas (kubernetes-validate, strict), probes on
/health and /ready, and every worker pool under a PodDisruptionBudget with a grace period covering its time limit."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import yaml
from promkit import DEPLOY

from cep_automation.cli.run import shutdown_timeout_s
from cep_automation.queues import POOLS

MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources() if doc["kind"] == kind}


def test_every_manifest_is_valid_for_kubernetes():
    assert MANIFESTS
    for doc in resources():
        kubernetes_validate.validate(doc, "1.37.0", strict=True)  # raises ValidationError naming the field


def test_the_http_service_is_probed_on_health_and_ready():
    container = by_kind("Deployment")["cep-automation-http"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_each_pool_has_a_disruption_budget_and_waits_its_longest_time_limit():
    deployments, budgets = by_kind("Deployment"), by_kind("PodDisruptionBudget")
    for pool in POOLS:
        pod = deployments[f"cep-automation-pool-{pool}"]["spec"]["template"]
        assert pod["spec"]["terminationGracePeriodSeconds"] > shutdown_timeout_s(pool)
        assert pod["spec"]["containers"][0]["args"] == ["cep-automation", "worker", pool]
        selector = budgets[f"cep-automation-pool-{pool}"]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
