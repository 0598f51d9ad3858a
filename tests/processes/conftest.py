"""Fixtures for tests that run real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

CLI = [sys.executable, "-c", "from cep_automation.cli import main; main()"]


@pytest.fixture
def process_env(cep_services) -> Callable[..., dict[str, str]]:
    """Environment for a child process on this session's services (real Redis broker by default)."""

    def make(broker_url: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL",)}
        env.update(cep_services.env(broker_url=broker_url))
        env.update(extra)
        return env

    return make


@pytest.fixture
def start_worker(process_env, redis_client) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``dramatiq cep_automation.actors`` for some queues; stopped with SIGTERM afterwards."""
    started: list[subprocess.Popen] = []

    def start(*queues: str, broker_url: str | None = None) -> subprocess.Popen:
        argv = [sys.executable, "-m", "dramatiq", "cep_automation.actors", "--processes", "1", "--threads", "2",
                "--queues", *queues]
        proc = subprocess.Popen(argv, env=process_env(broker_url), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    """Poll until ``predicate`` returns something truthy (bounded, so a hang fails the test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
