"""Builds the broker and assembles the middleware stack, in one documented order.

Order (``before_*`` hooks run top to bottom, ``after_*`` bottom to top):

1. ``AgeLimit``, ``TimeLimit``, ``ShutdownNotifications``, ``Callbacks``, ``Pipelines`` — Dramatiq's defaults
2. ``CurrentMessage`` — lets actors find their own message (progress, log lines, step outcomes)
   ``BrokerMaintenance`` — every 10 s, gives dead workers' messages back to their queues (Redis)
   ``FairFeeder`` — moves jobs with fairness keys to their queues, one key at a time in turn (Redis)
3. ``StaleTicks`` — periodiq's middleware (the ``periodic`` actor option); skips a tick's first delivery
   when it comes over 5 minutes late, never a retry
4. ``PayloadValidation`` — checks the payload again when processed (the producer checked it at
   enqueue, in ``runtime/enqueue.py``); an invalid one fails without retries
5. ``DeliveryLimit`` — dead-letters a message whose deliveries keep killing their worker (``PoisonMessage``)
6. ``Idempotency`` — skips a delivery whose key already ran or is running
   ``Ordering`` — one job per ordering key at a time, in enqueue order; one out of turn waits, parked
   ``FlowControl`` — takes the actor's declared ``limits`` (rates, concurrency per key) or postpones the job
7. ``Metrics`` — Prometheus counters and histograms; forks the ``/metrics`` endpoint
8. ``Audit`` — one ``audit_log`` row per outcome
9. ``JobState`` — queued/active/retrying/completed/failed in Redis
10. ``DeadLetters`` — writes what will not be retried to ``dead_letters`` before it is rejected
11. ``Retries`` — exponential backoff from the queue policy table; ``Retry-After``; permanent errors fail;
    a retry that cannot be enqueued (Redis down) dead-letters the message instead of losing it

``Retries`` is last so that its ``after_process_message`` runs first: every middleware above it
then sees ``message.failed`` set when the last attempt has failed.

The brokers built here send each signal only to the middleware that handle it (``broker/signals.py``).
"""

from __future__ import annotations

from typing import TypeVar

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)

from cep_automation.broker.signals import with_signal_table
from cep_automation.settings import Settings

M = TypeVar("M", bound=Middleware)


def middleware_stack(settings: Settings) -> list[Middleware]:
    """The middleware every broker gets, in order."""
    # Imported here: the middleware use broker/acks.py, and importing this package must not import them back.
    from cep_automation.middleware import (
        Audit,
        BrokerMaintenance,
        DeadLetters,
        DeliveryLimit,
        FairFeeder,
        FlowControl,
        Idempotency,
        JobState,
        Metrics,
        Ordering,
        PayloadValidation,
        Retries,
        StaleTicks,
    )

    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CurrentMessage(),
        BrokerMaintenance(),
        FairFeeder(),
        StaleTicks(),
        PayloadValidation(),
        DeliveryLimit(),
        Idempotency(),
        Ordering(),
        FlowControl(),
        Metrics(),
        Audit(),
        JobState(),
        DeadLetters(),
        Retries(),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``BROKER_URL`` (or ``REDIS_URL``): Redis, RabbitMQ (``amqp://``) or stub (``stub://``)."""
    url = settings.effective_broker_url
    broker: dramatiq.Broker
    if url.startswith("stub://"):
        broker = with_signal_table(StubBroker)(middleware=[])
    elif url.startswith(("amqp://", "amqps://")):
        from cep_automation.broker.rabbitmq import NamespacedRabbitmqBroker

        # Confirmed publishes: an enqueue (a retry too) returns only once RabbitMQ has the message.
        broker = with_signal_table(NamespacedRabbitmqBroker)(
            url=url, namespace=settings.cep_namespace, confirm_delivery=True, middleware=[])
    else:
        from dramatiq.brokers.redis import RedisBroker

        from cep_automation.broker import acks, consumer
        from cep_automation.db.sentinel import broker_connection

        consumer.install()  # consumer threads that keep their delayed messages through a Redis outage
        broker = with_signal_table(RedisBroker)(
            **broker_connection(url), namespace=settings.cep_namespace, middleware=[],
            heartbeat_timeout=settings.cep_heartbeat_timeout_ms,
            maintenance_chance=0)  # BrokerMaintenance requeues dead workers' messages, marked for DeliveryLimit
        acks.enable(broker, same_redis=url == settings.redis_url)  # acks go in groups, one round trip for all
    for middleware in middleware_stack(settings):
        broker.add_middleware(middleware)
    return broker


def find_middleware(broker: dramatiq.Broker, kind: type[M]) -> M:
    """The broker's middleware of class ``kind`` (e.g. the :class:`Audit` writer to flush it)."""
    for middleware in broker.middleware:
        if isinstance(middleware, kind):
            return middleware
    raise LookupError(f"{kind.__name__} is not in this broker's middleware")
