"""The shared HTTP client against a real local server: timeouts, Retry-After, error classes, redacted logs."""

from __future__ import annotations

import logging

import pytest

from cep_automation.errors import PermanentError, TransientError, Unconfirmed
from cep_automation.plugins.http import HttpClient
from cep_automation.testing import FakeServer
from cep_automation.testing.fakes import Reply


class Echo(FakeServer):
    def handle(self, request):
        return Reply(200, {"path": request.path, "auth": request.headers.get("authorization")})


@pytest.fixture
def server():
    with Echo() as fake:
        yield fake


def client(server, **kwargs):
    return HttpClient("echo", server.url, headers={"Authorization": "Bearer s3cret-token"}, **kwargs)


def test_success_sends_headers(server):
    assert client(server).get("/things").json() == {"path": "/things", "auth": "Bearer s3cret-token"}


def test_429_with_retry_after_seconds_is_transient(server):
    server.fail_next(429, {"error": "slow down"}, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as error:
        client(server).get("/x")
    assert error.value.retry_after == 7 and error.value.delay == 7000


def test_retry_after_as_http_date(server):
    server.fail_next(503, {"error": "maintenance"}, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with pytest.raises(TransientError) as error:
        client(server).get("/x")
    assert error.value.retry_after > 3600


def test_5xx_transient_4xx_permanent(server):
    server.fail_next(502, {"error": "bad gateway"})
    with pytest.raises(TransientError):
        client(server).get("/x")
    server.fail_next(404, {"error": "no such list"})
    with pytest.raises(PermanentError, match="HTTP 404"):
        client(server).get("/x")


def test_classifier_overrides_the_status(server):
    server.fail_next(400, {"error": {"code": 17}})
    rate_limited = client(server, classify=lambda r: TransientError("rate", retry_after=60)
                          if r.json()["error"]["code"] == 17 else None)
    with pytest.raises(TransientError, match="rate"):
        rate_limited.get("/x")


def test_read_timeout_is_transient(server):
    server.fail_next(200, {}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        client(server, timeout=(1, 0.2)).get("/slow")


def test_a_send_that_timed_out_is_unconfirmed_not_plainly_transient(server):
    # A send the provider would act on twice: a timeout after it left may mean it arrived
    server.fail_next(200, {}, delay_s=1.0)
    with pytest.raises(Unconfirmed, match="may have acted"):
        client(server, timeout=(1, 0.2)).post("/messages", json={}, repeatable=False)


def test_a_send_that_could_not_connect_surely_failed():
    from cep_automation.testing.ports import free_port

    with pytest.raises(TransientError, match="cannot connect") as raised:
        HttpClient("nobody", f"http://127.0.0.1:{free_port()}").post("/messages", repeatable=False)
    assert not isinstance(raised.value, Unconfirmed)


def test_connection_refused_is_transient():
    from cep_automation.dev.embedded import free_port

    with pytest.raises(TransientError, match="cannot connect"):
        HttpClient("nobody", f"http://127.0.0.1:{free_port()}").get("/")


def test_logs_never_show_tokens_or_personal_data(server, caplog):
    caplog.set_level(logging.INFO)
    client(server).get("/members/ana@example.com?access_token=EAAGsecret")
    text = caplog.text
    assert "GET" in text and "ana@example.com" not in text and "EAAGsecret" not in text
    assert "s3cret-token" not in text


def test_each_call_is_measured_by_integration_and_outcome(server):
    from cep_automation.records import metrics
    from cep_automation.testing.ports import free_port

    def count(text: str, name: str, outcome: str) -> float:
        line = next((row for row in text.splitlines() if row.startswith("integration_request_seconds_count")
                     and f'integration="{name}"' in row and f'outcome="{outcome}"' in row), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    before = metrics.render()[0].decode()
    measured = client(server)
    measured.name = "measured"
    measured.get("/ok")
    server.fail_next(500, {"error": "boom"})
    with pytest.raises(TransientError):
        measured.get("/boom")
    gone = HttpClient("measured", f"http://127.0.0.1:{free_port()}", timeout=(0.5, 0.5))
    with pytest.raises(TransientError):
        gone.get("/nobody")
    after = metrics.render()[0].decode()
    outcomes = ("ok", "error", "no_answer")
    assert [count(after, "measured", o) - count(before, "measured", o) for o in outcomes] == [1, 1, 1]


def test_a_proxy_from_the_environment_is_used_and_no_proxy_is_honoured(server, monkeypatch):
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with Echo() as proxy:
        # Given an HTTP proxy in the environment when the client is built
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        # Then a request to an API goes through it (the API's host does not even resolve)
        assert HttpClient("crm", "http://crm.example.invalid").get("/things").json()["path"] == "/things"
        assert proxy.requests[0].headers["host"] == "crm.example.invalid"
        # And a host in NO_PROXY is called directly
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        assert client(server).get("/things").json()["path"] == "/things"
        assert len(proxy.requests) == 1
