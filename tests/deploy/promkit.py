"""A real Prometheus for the deployment tests, and the metric names a PromQL expression reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from cep_automation.testing import wait_for
from cep_automation.testing.ports import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "contrib" / "deploy"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}


def tool(name: str) -> str:
    """The path of a Debian tool; skipped only where it is absent, and a failure in CI (``.ci/run`` installs it)."""
    found = shutil.which(name)
    if found is None:
        why = f"{name} is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names in ``expr``: identifiers that are not functions, keywords, labels or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    names = re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {name for name in names if name.lower() not in KEYWORDS}


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the Grafana dashboard."""
    board = json.loads((DEPLOY / "grafana" / "cep.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


class Prometheus:
    """``prometheus`` on a free port, scraping ``targets`` (job → list of (address, labels)) every second."""

    def __init__(self, root: Path, token: str, targets: dict[str, list[tuple[str, dict[str, str]]]]) -> None:
        self.port, self.root = free_port(), root
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(DEPLOY / "prometheus" / "cep.rules.yml")]
        (root / "token").write_text(token)
        for job in config["scrape_configs"]:
            job["authorization"]["credentials_file"] = str(root / "token")
            job["static_configs"] = [{"targets": [address], "labels": labels}
                                     for address, labels in targets[job["job_name"]]]
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = root / "prometheus.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [tool("prometheus"), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"], stdout=out, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a Prometheus API answer; fails the test with Prometheus's own error otherwise."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        assert body["status"] == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def wait_ready(self) -> Prometheus:
        def ready() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
            except OSError:
                return False
            return True

        wait_for(ready, timeout=60, what="Prometheus to be ready")
        return self

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
