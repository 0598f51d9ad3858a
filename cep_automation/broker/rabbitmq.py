"""Dramatiq's RabbitMQ broker with its queues under ``CEP_NAMESPACE``: ``<namespace>.leads`` and so on.

Dramatiq's :class:`~dramatiq.brokers.rabbitmq.RabbitmqBroker` names each RabbitMQ queue after the actor's
queue (``leads``, its delay queue ``leads.DQ``, its dead-letter queue ``leads.XQ``), so two deployments on one
RabbitMQ virtual host would share their queues. Here only the names RabbitMQ sees carry the namespace
(:func:`physical_name`); messages, actors, middleware, metrics and the audit log keep the plain names. The
readers of queue depths (``records/rabbitmq_state.py``) use the same function, so both always agree.
"""

from __future__ import annotations

import uuid
from typing import Any

from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, _RabbitmqConsumer
from dramatiq.common import dq_name, xq_name


def physical_name(namespace: str, queue: str) -> str:
    """The RabbitMQ queue that holds Dramatiq's queue ``queue`` (``leads``, ``leads.DQ``, ``leads.XQ``)."""
    return f"{namespace}.{queue}"


class NamespacedRabbitmqBroker(RabbitmqBroker):
    """A :class:`RabbitmqBroker` whose queues live under ``namespace`` on the server.

    Parameters:
      namespace: the prefix of every queue name on the server (``CEP_NAMESPACE``).
      **kwargs: :class:`RabbitmqBroker`'s own (``url``, ``middleware`` …).
    """

    def __init__(self, *, namespace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace
        self.broker_id = str(uuid.uuid4())  # as RedisBroker's: names this process in our worker notes

    def physical(self, queue: str) -> str:
        return physical_name(self.namespace, queue)

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return _NamespacedConsumer

    @property
    def channel(self) -> Any:
        """The thread's channel, publishing to the namespaced queue of a message's routing key."""
        return _NamespacedChannel(RabbitmqBroker.channel.fget(self), self.physical)  # type: ignore[attr-defined]

    @channel.deleter
    def channel(self) -> None:
        RabbitmqBroker.channel.fdel(self)  # type: ignore[attr-defined]

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
        arguments["x-dead-letter-routing-key"] = self.physical(xq_name(queue_name))
        return arguments

    def _declare_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(queue=self.physical(queue_name), durable=True,
                                          arguments=self._build_queue_arguments(queue_name))

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(queue=self.physical(dq_name(queue_name)), durable=True,
                                          arguments=self._build_queue_arguments(queue_name))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(queue=self.physical(xq_name(queue_name)), durable=True,
                                          arguments={"x-message-ttl": DEAD_MESSAGE_TTL})

    def flush(self, queue_name: str) -> None:
        import pika.exceptions

        for name in (queue_name, dq_name(queue_name), xq_name(queue_name)):
            try:
                self.channel.queue_purge(self.physical(name))
            except pika.exceptions.AMQPChannelError:
                del self.channel


class _NamespacedChannel:
    """A pika channel whose publishes to the default exchange go to the namespaced queue."""

    def __init__(self, channel: Any, physical: Any) -> None:
        self._channel, self._physical = channel, physical

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, **kwargs: Any) -> None:
        self._channel.basic_publish(exchange, self._physical(routing_key) if exchange == "" else routing_key, body,
                                    **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


class _NamespacedConsumer(_RabbitmqConsumer):
    """Consumes the namespaced queue; keeps the plain name for Dramatiq's bookkeeping."""

    def __init__(self, broker: NamespacedRabbitmqBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, broker.physical(queue_name), prefetch, timeout)  # type: ignore[no-untyped-call]
        self.queue_name = queue_name
