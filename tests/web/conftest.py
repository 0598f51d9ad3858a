"""Fixtures only: the HTTP service in a thread (stub broker) or as a `cep-automation serve` process."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import httpx
import pytest

from cep_automation.testing import CLI, wait_for
from cep_automation.testing.ports import free_port

API_TOKEN = "test-api-token-9f8e7d6c5b4a"
APP_SECRET = "test-meta-app-secret-123"
VERIFY_TOKEN = "test-meta-verify-token-456"


@pytest.fixture
def secrets():
    """The API token and Meta secrets every app of these tests is configured with."""
    return SimpleNamespace(api=API_TOKEN, app_secret=APP_SECRET, verify=VERIFY_TOKEN)


@pytest.fixture
def web_settings(cep_services):
    """Settings on this session's services with the web secrets set (override any with keywords)."""
    from cep_automation.settings import load_settings

    def make(**values):
        values = {"redis_url": cep_services.redis_url, "database_url": cep_services.database_url,
                  "cep_api_token": API_TOKEN, "meta_app_secret": APP_SECRET, "meta_verify_token": VERIFY_TOKEN,
                  **values}
        return load_settings(_env_file=None, **values)

    return make


@pytest.fixture
def start_app(web_settings):
    """Serve ``create_app(settings)`` from a thread on a free port; returns the server (``.url``)."""
    from cep_automation.web import ServerThread, create_app

    servers = []

    def start(settings=None, **options):
        server = ServerThread(create_app(settings or web_settings(), **options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(db, stub_broker, start_app):
    """The service on the stub broker, with empty tables and an empty Redis namespace."""
    return start_app()


@pytest.fixture
def client(server):
    """An authenticated client of :func:`server`."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as http:
        yield http


@pytest.fixture
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def serve_process(process_env, redis_client, db, tmp_path):
    """Run ``cep-automation serve`` on the Redis broker; returns (base URL, path of its log)."""
    started = []

    def start(**extra):
        port, log = free_port(), tmp_path / f"serve-{len(started)}.log"
        env = process_env(**{"CEP_API_TOKEN": API_TOKEN, "META_APP_SECRET": APP_SECRET,
                             "META_VERIFY_TOKEN": VERIFY_TOKEN, **extra})
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is not None or _answers(url), timeout=60, what="cep-automation serve")
        assert proc.poll() is None, log.read_text()
        return url, log

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
