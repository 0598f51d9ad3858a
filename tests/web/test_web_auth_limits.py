"""The token, the body size limit, JSON errors and security headers, over HTTP."""

from __future__ import annotations

import base64

import httpx
import pytest

PROTECTED = [("GET", "/metrics"), ("GET", "/openapi.json"), ("POST", "/v1/jobs/stats.rollup"),
             ("GET", "/v1/jobs/some-id"), ("GET", "/admin/"), ("GET", "/admin/dead-letters")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_refuse_missing_and_wrong_tokens(anonymous, method, path):
    missing = anonymous.request(method, path)
    wrong = anonymous.request(method, path, headers={"Authorization": "Bearer not-the-token"})
    for response in (missing, wrong):
        assert response.status_code == 401, response.text
        assert response.json()["error"].startswith("missing or wrong token")
        assert response.headers["www-authenticate"]


def test_the_api_takes_bearer_tokens_only_and_the_dashboard_basic_auth_too(anonymous, secrets):
    basic = "Basic " + base64.b64encode(f"ops:{secrets.api}".encode()).decode()
    assert anonymous.get("/v1/jobs/x", headers={"Authorization": basic}).status_code == 401
    page = anonymous.get("/admin/", headers={"Authorization": basic})
    assert page.status_code == 200 and "Queues" in page.text
    challenge = anonymous.get("/admin/")
    assert challenge.headers["www-authenticate"].startswith('Basic realm="cep-automation dashboard"')
    wrong = "Basic " + base64.b64encode(b"ops:guess").decode()
    assert anonymous.get("/admin/", headers={"Authorization": wrong}).status_code == 401


def test_unset_token_closes_everything_but_health_and_webhook(db, start_app, web_settings, secrets):
    app = start_app(web_settings(cep_api_token=None))
    for path in ("/metrics", "/v1/jobs/x", "/admin/"):
        response = httpx.get(app.url + path, headers={"Authorization": f"Bearer {secrets.api}"})
        assert response.status_code == 503 and "CEP_API_TOKEN is not set" in response.json()["error"]
    assert httpx.get(app.url + "/health").status_code == 200
    assert httpx.get(app.url + "/webhooks/meta/leads").status_code == 403  # its own check, not the token


def test_declared_oversized_body_is_refused_before_it_is_read(client, stub_broker):
    response = client.post("/v1/jobs/stats.rollup", content=b"{" + b" " * (1024 * 1024) + b"}")
    assert response.status_code == 413 and "larger than 1048576 bytes" in response.json()["error"]
    assert stub_broker.queues["stats"].qsize() == 0


def test_streamed_oversized_body_is_cut_off(client):
    def chunks():
        for _ in range(40):
            yield b" " * 65536

    response = client.post("/v1/jobs/stats.rollup", content=chunks())  # chunked: no Content-Length
    assert response.status_code == 413


def test_oversized_webhook_delivery_is_refused(anonymous):
    response = anonymous.post("/webhooks/meta/leads", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413


def test_errors_are_json_and_responses_carry_security_headers(client):
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = client.delete("/v1/jobs/stats.rollup")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "Method Not Allowed"}
    for response in (missing, client.get("/health"), client.get("/admin/")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
