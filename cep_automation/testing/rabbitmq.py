"""RabbitMQ in tests: the server on 127.0.0.1:5672 (``.ci/run`` starts it) and one namespace of queues per test.

A test's queues are ``<namespace>.<queue>`` (and ``.DQ``, ``.XQ``), as the workers' broker names them
(``broker/rabbitmq.py``); :meth:`RabbitNamespace.close` deletes them, so tests never see each other's messages.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pika
import pika.exceptions

from cep_automation.broker.rabbitmq import NamespacedRabbitmqBroker, physical_name
from cep_automation.queues import POLICIES

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
SUFFIXES = ("", ".DQ", ".XQ")


def available() -> bool:
    """Whether something listens on RabbitMQ's port."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


class RabbitNamespace:
    """One test's queues on the local RabbitMQ, and plain producers on them.

    Parameters:
      namespace: the queues' prefix (``CEP_NAMESPACE`` of the test's workers).
    """

    def __init__(self, namespace: str, url: str = AMQP_URL) -> None:
        self.namespace, self.url = namespace, url
        self._brokers: list[NamespacedRabbitmqBroker] = []

    def broker(self) -> NamespacedRabbitmqBroker:
        """A broker with no middleware in this namespace (closed by :meth:`close`): a producer's."""
        made = NamespacedRabbitmqBroker(url=self.url, namespace=self.namespace, confirm_delivery=True, middleware=[])
        self._brokers.append(made)
        return made

    def queues(self) -> list[str]:
        """Every queue name this namespace may have on the server."""
        return [physical_name(self.namespace, q + s) for q in sorted({p.queue for p in POLICIES}) for s in SUFFIXES]

    def exists(self, name: str) -> bool:
        """Whether the server has the queue ``name`` (a full name, e.g. ``leads`` or ``<namespace>.leads``)."""
        with self._channel() as channel:
            try:
                channel.queue_declare(queue=name, passive=True)
                return True
            except pika.exceptions.ChannelClosedByBroker:
                return False

    def messages(self, queue: str = "leads") -> int:
        """Messages RabbitMQ holds for ``queue`` and its delay queue, ready *and* unacknowledged (what a worker
        fetched); from ``rabbitmqctl``, since a passive declaration counts only the ready ones."""
        wanted = {physical_name(self.namespace, queue), physical_name(self.namespace, queue + ".DQ")}
        out = subprocess.run(["rabbitmqctl", "list_queues", "name", "messages", "--quiet", "--no-table-headers"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        rows = (line.split("\t") for line in out.splitlines() if "\t" in line)
        return sum(int(count) for name, count in rows if name in wanted)

    def close(self) -> None:
        """Close the producers and delete every queue of the namespace."""
        for broker in self._brokers:
            broker.close()
        with self._channel() as channel:
            for name in self.queues():
                channel.queue_delete(queue=name)

    def _channel(self) -> Any:
        return _Channel(self.url)


class _Channel:
    """A channel on a connection of its own, closed on exit."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))

    def __enter__(self) -> Any:
        return self.connection.channel()

    def __exit__(self, *exc: object) -> None:
        if self.connection.is_open:
            self.connection.close()
