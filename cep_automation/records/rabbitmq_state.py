"""What Dramatiq's RabbitMQ broker holds, read by passive queue declarations (no management plugin needed).

The layout is Dramatiq's, with our namespace (``broker/rabbitmq.py``): ``<namespace>.<queue>`` holds the
waiting messages, ``<namespace>.<queue>.DQ`` the delayed ones (retries, ``delay=``), ``.XQ`` the rejected ones.
A passive ``queue.declare`` answers a queue's *ready* messages without touching them. What a worker has
fetched and not yet acknowledged is not in that count, and the delayed messages a worker holds until their
time (Dramatiq's workers fetch the delay queue ahead) are not either; RabbitMQ tells those only to its
management API. Only :mod:`cep_automation.records.broker_state` calls this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions
from dramatiq.common import dq_name

from cep_automation.broker.rabbitmq import physical_name
from cep_automation.errors import ServiceUnavailable

TIMEOUT_S = 2
STATES = (("waiting", ""), ("delayed", ".DQ"))


def is_rabbitmq_url(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://"))


@contextmanager
def connection(url: str) -> Iterator[pika.BlockingConnection]:
    """A short-lived connection to the first server of ``url`` (``;``-separated, as Dramatiq takes it) that
    answers within :data:`TIMEOUT_S`.

    Raises:
      ServiceUnavailable: no server answered.
    """
    conn, failures = None, []
    for each in url.split(";"):
        params = pika.URLParameters(each)
        params.socket_timeout = params.stack_timeout = params.blocked_connection_timeout = TIMEOUT_S
        params.connection_attempts = 1
        try:
            conn = pika.BlockingConnection(params)
            break
        except pika.exceptions.AMQPError as exc:
            failures.append(f"{params.host}:{params.port}: {type(exc).__name__} {exc}".strip())
    if conn is None:
        raise ServiceUnavailable(f"RabbitMQ is unreachable ({'; '.join(failures)})")
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


def ready_count(channel: Any, name: str) -> tuple[Any, int]:
    """(the channel to go on with, ready messages in the queue ``name``; 0 when it does not exist yet).

    RabbitMQ closes a channel that declares a missing queue passively; a new one is opened on the same connection.
    """
    try:
        return channel, int(channel.queue_declare(queue=name, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        return channel.connection.channel(), 0


def waiting_and_delayed(url: str, namespace: str, queues: list[str]) -> dict[tuple[str, str], int]:
    """(queue, "waiting"|"delayed") → ready messages in the queue and its delay queue, over one connection."""
    counts: dict[tuple[str, str], int] = {}
    try:
        with connection(url) as conn:
            channel = conn.channel()
            for queue in queues:
                for state, suffix in STATES:
                    channel, counts[(queue, state)] = ready_count(channel, physical_name(namespace, queue + suffix))
    except pika.exceptions.AMQPError as exc:
        raise ServiceUnavailable(f"RabbitMQ did not answer: {type(exc).__name__} {exc}".strip()) from exc
    return counts


def queue_depth(broker: Any, queue: str) -> int:
    """Ready messages in ``queue`` and its delay queue, read on ``broker``'s own channel for this thread."""
    total = 0
    for name in (queue, dq_name(queue)):
        try:
            total += int(broker.channel.queue_declare(queue=broker.physical(name), passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:
            del broker.channel  # the broker opens a new one on its next use
            if exc.reply_code != 404:
                raise
    return total


def check(url: str) -> None:
    """Raises :class:`ServiceUnavailable` unless RabbitMQ accepts a connection and opens a channel."""
    with connection(url) as conn:
        conn.channel().close()
