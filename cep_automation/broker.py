"""Builds the broker and assembles the middleware stack, in one documented order.

Order (``before_*`` hooks run top to bottom, ``after_*`` bottom to top):

1. ``AgeLimit``, ``TimeLimit``, ``ShutdownNotifications``, ``Callbacks``, ``Pipelines`` — Dramatiq's defaults
2. ``CurrentMessage`` — lets actors find their own message (progress, log lines)
3. ``PeriodiqMiddleware`` — carries the ``periodic`` actor option, skips stale ticks
4. ``ScheduleGuard`` — one run per scheduled tick even with two schedulers
5. ``JobState`` — queued/active/completed/failed in Redis; before ``Retries`` so it sees final failures
6. ``Retries`` — exponential backoff from the queue policy table
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from periodiq import PeriodiqMiddleware

from cep_automation.middleware import JobState, ScheduleGuard
from cep_automation.settings import Settings


def middleware_stack(settings: Settings) -> list[Middleware]:
    """The middleware every broker gets, in order."""
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CurrentMessage(),
        PeriodiqMiddleware(skip_delay=300),
        ScheduleGuard(),
        JobState(),
        Retries(),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``BROKER_URL`` (or ``REDIS_URL``): Redis, RabbitMQ (``amqp://``) or stub (``stub://``)."""
    url = settings.effective_broker_url
    broker: dramatiq.Broker
    if url.startswith("stub://"):
        broker = StubBroker(middleware=[])
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=[])
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=settings.cep_namespace, middleware=[])
    for middleware in middleware_stack(settings):
        broker.add_middleware(middleware)
    return broker
