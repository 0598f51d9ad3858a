"""The compose file: parsed (Docker here has no compose plugin), and its commands started natively as compose
would start them, against this session's Redis and PostgreSQL."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit import API_TOKEN, Live, get
from promkit import DEPLOY

from cep_automation.cli.run import shutdown_timeout_s
from cep_automation.queues import POOLS
from cep_automation.testing.ports import free_port

pytestmark = pytest.mark.slow
COMPOSE = DEPLOY / "compose.yaml"


def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def grace_s(value: str) -> int:
    return int(re.fullmatch(r"(\d+)s", value).group(1))  # type: ignore[union-attr]


def test_compose_has_every_part_and_mounts_files_that_exist():
    found = services()
    assert {"redis", "postgres", "migrate", "scheduler", "http", "prometheus", "grafana"} <= found.keys()
    for pool in POOLS:
        assert found[f"pool-{pool}"]["command"] == ["cep-automation", "worker", pool]
        assert grace_s(found[f"pool-{pool}"]["stop_grace_period"]) > shutdown_timeout_s(pool)
    for service in found.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert not source.startswith(".") or (COMPOSE.parent / source).exists(), source


def native(command: list[str]) -> list[str]:
    """The compose command with ``cep-automation`` from this virtualenv (the image has it on its PATH)."""
    return [str(Path(sys.executable).parent / command[0]), *command[1:]] if command[0] == "cep-automation" else command


def native_env(service: dict[str, Any], deploy_env: Any, **extra: str) -> dict[str, str]:
    """The service's compose environment, pointed at this session's Redis and PostgreSQL."""
    compose_env = {k: str(v) for k, v in service["environment"].items() if k not in ("REDIS_URL", "DATABASE_URL")}
    compose_env["CEP_API_TOKEN"] = API_TOKEN
    return deploy_env(**{**compose_env, **extra})


def test_the_compose_commands_run_natively(deploy_env, tmp_path):
    found = services()
    # Given the migration, as compose runs it first
    migrate = subprocess.run(native(found["migrate"]["command"]), env=native_env(found["migrate"], deploy_env),
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    # When the automation pool, the scheduler and the HTTP service start with their compose commands
    pool_port, http_port = free_port(), free_port()
    pool_env = native_env(found["pool-automation"], deploy_env, CEP_METRICS_PORT=str(pool_port))
    pool = Live(native(found["pool-automation"]["command"]), pool_env, tmp_path / "pool.log")
    scheduler_env = native_env(found["scheduler"], deploy_env)
    scheduler = Live(native(found["scheduler"]["command"]), scheduler_env, tmp_path / "scheduler.log")
    http_command = [str(http_port) if part == "8000" else part for part in found["http"]["command"]]
    http = Live(native(http_command), native_env(found["http"], deploy_env), tmp_path / "http.log")
    try:
        # Then each serves: the pool its /metrics (token), the HTTP service /ready, and compose's own health check
        pool.wait_answers(f"http://127.0.0.1:{pool_port}/metrics")
        assert get(f"http://127.0.0.1:{pool_port}/metrics", API_TOKEN)[0] == 200
        http.wait_answers(f"http://127.0.0.1:{http_port}/ready")
        check = [part.replace("8000", str(http_port)) for part in found["http"]["healthcheck"]["test"][1:]]
        assert subprocess.run(check, timeout=30).returncode == 0
        assert scheduler.proc.poll() is None, scheduler.log
    finally:
        for each in (pool, scheduler, http):
            each.stop()
    # And each stops on SIGTERM, as `docker compose stop` sends it: with 0, or by the signal itself (uvicorn and
    # periodiq re-raise it), which systemd and Docker both count as a clean stop
    clean = {0, -signal.SIGTERM}
    assert {pool.proc.returncode, scheduler.proc.returncode, http.proc.returncode} <= clean, \
        "\n".join(Path(p).read_text() for p in (pool.log_path, scheduler.log_path, http.log_path))
