"""Fixtures only. The shared ones (stub_broker, stub_worker, db, redis_client, cep_services)
come from the package's own pytest plugin, ``cep_automation.testing``."""

from __future__ import annotations

import os
import secrets

import pytest


@pytest.fixture
def rabbitmq(cep_services):
    """A namespace of this test's own on the local RabbitMQ, which this process then reads as its broker
    (``BROKER_URL``, ``CEP_NAMESPACE``); its queues and its Redis keys are deleted afterwards."""
    import redis

    from cep_automation.settings import get_settings
    from cep_automation.testing.rabbitmq import AMQP_URL, RabbitNamespace, available

    if not available():
        if os.environ.get("CI"):
            pytest.fail("RabbitMQ must run in CI (.ci/run starts it)")
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    import cep_automation.actors  # noqa: F401  # declared on the stub broker before this process reads RabbitMQ

    namespace = f"{cep_services.namespace}-{secrets.token_hex(3)}"
    saved = {name: os.environ.get(name) for name in ("BROKER_URL", "CEP_NAMESPACE")}
    os.environ.update(BROKER_URL=AMQP_URL, CEP_NAMESPACE=namespace)
    get_settings.cache_clear()
    space = RabbitNamespace(namespace)
    try:
        yield space
    finally:
        space.close()
        client = redis.Redis.from_url(cep_services.redis_url)
        for name in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(name)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


@pytest.fixture
def redis_broker(settings_for, cep_services, redis_client):
    """Our broker (the whole stack, batched acks) on the real Redis, in a namespace of its own, emptied after."""
    import uuid

    from cep_automation.broker import build_broker

    namespace = f"{cep_services.namespace}-{uuid.uuid4().hex[:6]}"
    broker = build_broker(settings_for(broker_url=cep_services.redis_url, cep_namespace=namespace))
    yield broker
    for name in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(name)
    broker.close()
