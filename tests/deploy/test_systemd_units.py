"""The systemd units of ``contrib/deploy/systemd``: ``systemd-analyze verify`` and the pools' stop timeouts."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from promkit import DEPLOY, tool

from cep_automation.cli.run import shutdown_timeout_s
from cep_automation.queues import POOLS

UNITS = DEPLOY / "systemd"
ROOT = Path(__file__).resolve().parents[2]


def installed_copy(into: Path) -> Path:
    """The units with ``/opt/cep-automation`` pointing at this checkout, and one instance link per pool."""
    shutil.copytree(UNITS, into, dirs_exist_ok=True)
    for unit in into.glob("*.service"):
        text = unit.read_text().replace("/opt/cep-automation/.venv/bin", str(Path(sys.executable).parent))
        unit.write_text(text.replace("/opt/cep-automation", str(ROOT)))
    for pool in POOLS:
        (into / f"cep-automation-pool@{pool}.service").symlink_to("cep-automation-pool@.service")
    return into


def test_systemd_analyze_verify_finds_nothing(tmp_path):
    systemd_analyze = tool("systemd-analyze")
    units = installed_copy(tmp_path / "units")
    names = sorted(p.name for p in units.iterdir() if p.suffix in (".service", ".target") and "@." not in p.name)
    out = subprocess.run([systemd_analyze, "verify", "--man=no", *names], cwd=units, capture_output=True,
                         text=True, timeout=120)
    # systemd-analyze only warns (exit 0) on an unknown key or a bad value: any output is a finding
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def seconds(timespan: str) -> float:
    """A systemd time span such as ``30min 30s`` in seconds."""
    scale = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    return sum(float(n) * scale[unit or "s"] for n, unit in re.findall(r"(\d+)\s*([a-z]*)", timespan))


def drop_in(pool: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / f"cep-automation-pool@{pool}.service.d" / "pool.conf")
    return parser


def test_each_pool_waits_its_longest_time_limit_on_stop_and_has_its_own_metrics_port():
    ports = {}
    for pool in POOLS:
        service = drop_in(pool)["Service"]
        assert seconds(service["TimeoutStopSec"]) > shutdown_timeout_s(pool), pool
        ports[pool] = re.search(r"CEP_METRICS_PORT=(\d+)", service["Environment"]).group(1)  # type: ignore[union-attr]
    assert len(set(ports.values())) == len(POOLS)
    # and Prometheus scrapes each pool on that port
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    pools_job = next(job for job in config["scrape_configs"] if job["job_name"] == "cep-pools")
    scraped = {s["labels"]["pool"]: s["targets"][0].rpartition(":")[2] for s in pools_job["static_configs"]}
    assert scraped == ports
