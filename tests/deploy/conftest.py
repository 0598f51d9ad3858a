"""Fixtures only: live worker pools and HTTP services for the deployment checks, stopped afterwards."""

from __future__ import annotations

import os

import pytest
from livekit import API_TOKEN, Live, http_service, pool


@pytest.fixture
def deploy_env(process_env):
    """The environment of a deployed process on this session's services (Redis broker), with the API token."""

    def make(**extra: str) -> dict[str, str]:
        env = process_env(**{"CEP_API_TOKEN": API_TOKEN, **extra})
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    return make


@pytest.fixture
def live(tmp_path):
    """``live.pool(env, *queues)`` and ``live.http(env)``: processes stopped when the test ends."""
    started: list[Live] = []

    class Starter:
        def pool(self, env: dict[str, str], *queues: str, modules: tuple[str, ...] = ()) -> Live:
            env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"prom-{len(started)}"), **env}
            os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
            started.append(pool(env, tmp_path / f"pool-{len(started)}.log", *queues, modules=modules))
            return started[-1]

        def http(self, env: dict[str, str]) -> tuple[Live, str]:
            service, url = http_service(env, tmp_path / f"http-{len(started)}.log")
            started.append(service)
            return service, url

    yield Starter()
    for each in started:
        each.stop()
