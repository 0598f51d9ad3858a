"""/health, /ready and /metrics over HTTP: all fine, Redis or PostgreSQL unreachable, the token on /metrics."""

from __future__ import annotations

import httpx

from cep_automation.queues import POLICIES

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql://cep:secret-pw@127.0.0.1:1/nowhere"


def test_health_reports_every_part_and_queue(server, db):
    db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload) VALUES ('stats', 'stats.rollup',"
               " 'm-1', '{}')")
    response = httpx.get(server.url + "/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert body["checks"]["redis"] == body["checks"]["postgresql"] == {"status": "ok"}
    queues = body["checks"]["queues"]["queues"]
    assert set(queues) == {p.queue for p in POLICIES}
    assert queues["stats"] == {"waiting": 0, "delayed": 0, "dead": 1, "fair": 0}
    assert httpx.get(server.url + "/ready").json()["status"] == "ok"


def test_health_names_unreachable_redis(db, start_app, web_settings):
    # Given a second app whose settings point at a port where no Redis listens
    dead = start_app(web_settings(redis_url=DEAD_REDIS))
    # When it is asked for its health and readiness
    health, ready = httpx.get(dead.url + "/health"), httpx.get(dead.url + "/ready")
    # Then both answer 503 naming Redis, and PostgreSQL still shows as fine
    assert health.status_code == ready.status_code == 503
    assert health.json()["failing"] == ["redis", "queues"] and ready.json()["failing"] == ["redis"]
    assert "Redis is unreachable at redis://127.0.0.1:1/0" in health.json()["checks"]["redis"]["error"]
    assert health.json()["checks"]["postgresql"] == {"status": "ok"}


def test_health_names_unreachable_postgres_without_its_password(db, start_app, web_settings):
    dead = start_app(web_settings(database_url=DEAD_POSTGRES))
    response = httpx.get(dead.url + "/health")
    assert response.status_code == 503 and response.json()["failing"] == ["postgresql", "queues"]
    assert "PostgreSQL is unreachable at 127.0.0.1:1/nowhere" in response.text
    assert "secret-pw" not in response.text


def test_metrics_need_the_token_and_include_queue_length(client, anonymous):
    assert anonymous.get("/metrics").status_code == 401
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert 'queue_length{queue="leads",state="waiting"} 0.0' in response.text
