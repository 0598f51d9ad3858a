"""The broker factory picks Redis, RabbitMQ or the stub from the URL, with one middleware order."""

from __future__ import annotations

from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from cep_automation.broker import build_broker
from cep_automation.settings import load_settings


def settings(broker_url: str = ""):
    return load_settings(_env_file=None, redis_url="redis://127.0.0.1:6379/0",
                         database_url="postgresql://u@h/d", broker_url=broker_url)


def names(broker):
    return [type(m).__name__ for m in broker.middleware]


def test_redis_is_the_default():
    assert isinstance(build_broker(settings()), RedisBroker)


def test_amqp_url_gives_rabbitmq_and_stub_gives_stub():
    rabbitmq = build_broker(settings("amqp://guest:guest@127.0.0.1:5672/"))
    assert isinstance(rabbitmq, RabbitmqBroker) and rabbitmq.confirm_delivery
    assert isinstance(build_broker(settings("stub://")), StubBroker)


def test_rabbitmq_queues_are_named_under_the_namespace():
    rabbitmq = build_broker(settings("amqp://guest:guest@127.0.0.1:5672/").model_copy(update={"cep_namespace": "n1"}))
    assert [rabbitmq.physical(q) for q in ("leads", "leads.DQ", "leads.XQ")] == ["n1.leads", "n1.leads.DQ",
                                                                                 "n1.leads.XQ"]
    assert rabbitmq._build_queue_arguments("leads")["x-dead-letter-routing-key"] == "n1.leads.XQ"


def test_middleware_order_is_documented_and_retries_come_last():
    order = names(build_broker(settings("stub://")))
    assert order == ["AgeLimit", "TimeLimit", "ShutdownNotifications", "Callbacks", "Pipelines",
                     "CurrentMessage", "BrokerMaintenance", "FairFeeder", "StaleTicks", "PayloadValidation",
                     "DeliveryLimit",
                     "Idempotency", "Ordering", "FlowControl", "Metrics", "Audit", "JobState", "DeadLetters", "Retries"]
    import cep_automation.broker as module

    for name in order:
        assert name in module.__doc__
