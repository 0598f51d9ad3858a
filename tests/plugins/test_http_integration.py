"""HttpIntegration, the base of every HTTP integration: settings, hooks, timeouts, one cached client per thread."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

from cep_automation.plugins import CRM, HttpIntegration, PermanentError, TransientError
from cep_automation.testing import FakeServer, Recorded, Reply


class Echo(FakeServer):
    """Answers each request with the headers it received; ``/teapot`` answers 418 with a JSON reason."""

    def handle(self, request: Recorded) -> Reply:
        if request.path == "/teapot":
            return Reply(418, {"reason": "short and stout"})
        if request.path == "/login":
            return Reply(200, {}, headers={"Set-Cookie": "session=abc; Path=/"})
        return Reply(200, {"path": request.path, "headers": request.headers})


class AcmeCRM(HttpIntegration, CRM):
    """A plugin's CRM, on its own settings object (``ACME_TOKEN``, ``ACME_URL``)."""

    name = "acme"
    required_settings = ("token", "url")
    settings_prefix = "ACME_"
    base_url_setting = "url"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"}

    def classify(self, response):
        if response.status_code == 418:
            return PermanentError(f"acme: {response.json()['reason']}")
        return None


@pytest.fixture
def echo():
    with Echo() as fake:
        yield fake


def acme(url, token="t0k", **kwargs):
    return AcmeCRM(SimpleNamespace(token=token, url=url), **kwargs)


def test_the_client_uses_the_base_url_setting_and_the_headers_hook(echo):
    answer = acme(echo.url).client().get("/contacts").json()
    assert answer["path"] == "/contacts"
    assert answer["headers"]["authorization"] == "Bearer t0k"


def test_the_classify_hook_decides_errors_and_the_status_decides_the_rest(echo):
    integration = acme(echo.url)
    with pytest.raises(PermanentError, match="acme: short and stout"):
        integration.client().get("/teapot")
    echo.fail_next(503, {"error": "down"}, headers={"Retry-After": "7"})
    with pytest.raises(TransientError, match="acme: HTTP 503") as error:
        integration.client().get("/contacts")
    assert error.value.retry_after == 7


def test_the_auth_hook(echo):
    class BasicAcme(AcmeCRM):
        def headers(self):
            return {}

        def auth(self):
            return ("user", "secret")

    answer = BasicAcme(SimpleNamespace(token="", url=echo.url)).client().get("/").json()
    assert answer["headers"]["authorization"] == "Basic dXNlcjpzZWNyZXQ="


def test_timeouts_default_to_the_shared_ones_and_can_be_given(echo):
    assert acme(echo.url).timeout == (5.0, 30.0)
    slow = acme(echo.url, timeout=(1, 0.2))
    assert slow.client().timeout == (1, 0.2)
    echo.fail_next(200, {}, delay_s=1.0)
    with pytest.raises(TransientError, match="acme: GET /slow timed out"):
        slow.client().get("/slow")


def test_a_subclass_may_change_the_default_timeout(echo):
    class Patient(AcmeCRM):
        default_timeout = (5.0, 120.0)

    assert Patient(SimpleNamespace(token="t", url=echo.url)).client().timeout == (5.0, 120.0)


def test_one_client_per_thread_kept_until_closed(echo):
    integration = acme(echo.url)
    mine = integration.client()
    assert integration.client() is mine
    other = []
    thread = threading.Thread(target=lambda: other.append(integration.client()))
    thread.start()
    thread.join()
    assert other[0] is not mine and other[0].session is not mine.session

    integration.close()
    assert integration.client() is not mine


def test_a_kept_client_sends_no_cookies_back(echo):
    client = acme(echo.url).client()
    client.get("/login")
    assert "cookie" not in client.get("/contacts").json()["headers"]


def test_a_forked_process_builds_its_own_client(echo):
    integration = acme(echo.url)
    parent = integration.client()
    pid = os.fork()
    if pid == 0:  # the child: a session shared with the parent would share its sockets
        os._exit(0 if integration.client() is not parent else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert integration.client() is parent


def test_the_disabled_reason_names_the_plugins_variables():
    assert acme(None, token=None).disabled_reason() == "not configured: set ACME_TOKEN, ACME_URL"
    assert acme("http://x").enabled


def test_calling_without_a_base_url_is_permanent_and_names_the_variable():
    with pytest.raises(PermanentError, match="acme: not configured: set ACME_URL"):
        acme(None).client()


def test_a_client_of_an_ended_thread_closes_its_connections(echo):
    # Given a client that a short-lived thread (a campaign.sync pool thread) used and kept
    integration = acme(echo.url)
    sessions = []

    def call():
        integration.client().get("/")
        sessions.append(integration.client().session)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    # Then, once the thread is gone, its session is closed: no connection pool is left open
    pools = sessions[0].get_adapter(echo.url).poolmanager.pools
    deadline = time.monotonic() + 5
    while len(pools) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pools) == 0
