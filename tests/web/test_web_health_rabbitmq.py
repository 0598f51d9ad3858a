"""/health, /ready and the dashboard's queue counts with ``BROKER_URL=amqp://…``: RabbitMQ is checked and its
queues are counted (Redis is still checked: our own state lives there)."""

from __future__ import annotations

import httpx
import pytest
from dramatiq import Message

pytestmark = pytest.mark.rabbitmq
DEAD_RABBITMQ = "amqp://guest:secret-pw@127.0.0.1:1/"


def test_health_checks_rabbitmq_and_counts_its_queues(rabbitmq, db, stub_broker, start_app, web_settings):
    # Given two leads waiting on RabbitMQ in this test's namespace, and an app whose broker is RabbitMQ
    producer = rabbitmq.broker()
    for n in range(2):
        producer.enqueue(Message(queue_name="leads", actor_name="lead.created", args=(), kwargs={"n": n},
                                 options={}))
    app = start_app(web_settings(broker_url=rabbitmq.url, cep_namespace=rabbitmq.namespace))
    # When it is asked for its health, its readiness and the dashboard's counts
    health = httpx.get(app.url + "/health")
    ready = httpx.get(app.url + "/ready")
    queues = httpx.get(app.url + "/admin/api/queues", headers={"Authorization": "Bearer test-api-token-9f8e7d6c5b4a"})
    # Then RabbitMQ is one of the checks, and the counts are RabbitMQ's
    assert health.status_code == ready.status_code == 200, health.text
    assert health.json()["checks"]["rabbitmq"] == ready.json()["checks"]["rabbitmq"] == {"status": "ok"}
    assert health.json()["checks"]["redis"] == {"status": "ok"}
    leads = health.json()["checks"]["queues"]["queues"]["leads"]
    assert (leads["waiting"], leads["delayed"], leads["dead"]) == (2, 0, 0)
    counts = {q["queue"]: q for q in queues.json()["queues"]}
    assert counts["leads"]["waiting"] == 2 and counts["stats"]["waiting"] == 0


def test_health_names_unreachable_rabbitmq_without_its_password(rabbitmq, db, start_app, web_settings):
    dead = start_app(web_settings(broker_url=DEAD_RABBITMQ))
    health, ready = httpx.get(dead.url + "/health"), httpx.get(dead.url + "/ready")
    assert health.status_code == ready.status_code == 503
    assert health.json()["failing"] == ["rabbitmq", "queues"] and ready.json()["failing"] == ["rabbitmq"]
    assert "RabbitMQ is unreachable (127.0.0.1:1" in health.json()["checks"]["rabbitmq"]["error"]
    assert "secret-pw" not in health.text and health.json()["checks"]["redis"] == {"status": "ok"}
