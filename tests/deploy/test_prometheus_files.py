"""The shipped Prometheus files, checked offline: generated from the thresholds, and clean for ``promtool``."""

from __future__ import annotations

import json
import subprocess

import pytest
from promkit import DEPLOY, dashboard_exprs, metric_names, tool

from cep_automation.ops import THRESHOLDS, Threshold
from cep_automation.ops.prometheus_rules import render

RULES = DEPLOY / "prometheus" / "cep.rules.yml"


def test_the_committed_rules_are_the_generated_ones():
    assert RULES.read_text() == render(), "regenerate: python -m cep_automation.ops.prometheus_rules > " + str(RULES)


def test_promtool_checks_the_rules_and_the_config():
    promtool = tool("promtool")
    rules = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(THRESHOLDS) + 4} rules found" in rules.stdout
    config_file = str(DEPLOY / "prometheus" / "prometheus.yml")
    config = subprocess.run([promtool, "check", "config", "--syntax-only", config_file], capture_output=True,
                            text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_parses_every_dashboard_expression(tmp_path):
    promtool = tool("promtool")
    # Given the dashboard's queries written as recording rules, which promtool parses as PromQL
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())]}]}
    (tmp_path / "dashboard.rules.yml").write_text(json.dumps(rules))
    out = subprocess.run([promtool, "check", "rules", str(tmp_path / "dashboard.rules.yml")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_metric_names_of_an_expression():
    expr = ('histogram_quantile(0.95, sum by (queue, le) (rate(job_wait_seconds_bucket{queue="leads"}[5m])))'
            ' / on (queue) group_left cep:jobs_processed:rate5m > bool 2 or up{job="x"}')
    assert metric_names(expr) == {"job_wait_seconds_bucket", "cep:jobs_processed:rate5m", "up"}


def test_a_threshold_of_an_unknown_kind_or_severity_is_refused():
    with pytest.raises(ValueError, match="unknown threshold kind 'depth'"):
        Threshold("X", "depth", 1, "warning")
    with pytest.raises(ValueError, match="unknown severity 'page'"):
        Threshold("X", "queue_depth", 1, "page")


def test_ops_exports_its_public_names():
    import types

    import cep_automation.ops as ops

    public = {name for name, value in vars(ops).items()
              if not name.startswith("_") and name != "annotations" and not isinstance(value, types.ModuleType)}
    assert set(ops.__all__) == public
