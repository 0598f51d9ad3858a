"""Acks and nacks sent in groups: one Redis round trip for every message that finished meanwhile.

Dramatiq acks each message from the worker thread that ran it, one round trip (and, in a sandboxed kernel,
several system calls) per message: on a busy pool that is as much work as running a short job. Here a
worker thread hands the finished message to the process's :class:`AckBatcher` and takes the next one; the
batcher's thread sends everything handed over while its previous batch was on the wire in one pipeline
(group commit). On a quiet pool a batch is one message and goes at once, so nothing waits for company. While
the process is backed up (fetched messages wait for a worker thread: throughput counts) the thread gathers for
:data:`GATHER_S` before it sends: a few messages a round trip instead of one or two, and far fewer wake-ups of a
thread that competes with the workers for the GIL. A worker thread does not wait for its ack in either case.

What a message needs written in Redis when it finishes (its idempotency key's outcome, see
:func:`after_ack`) rides in the same pipeline, before its ack. Dramatiq's ``before_ack``/``before_nack`` hooks
run in the worker thread, as before (they may read the job's exception); ``after_ack``/``after_nack`` run on
the batcher's thread once the batch is sent. A batch that cannot be sent
(Redis down) is kept and sent again, as Dramatiq's own post-processing does; a process killed before its
batch went out leaves those messages unacked, as a kill between a job's end and its ack always did: the
requeue sweep gives them back (idempotency and the effects ledger stop the repeat).

Only brokers made by :func:`cep_automation.broker.build_broker` batch (:func:`enable`); others ack as Dramatiq
does, so a benchmark's plain Dramatiq broker in the same process stays plain.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import redis
from dramatiq.common import current_millis

from cep_automation.backlog import backed_up, waiting
from cep_automation.db.redis_client import evalsha, execute_loading

logger = logging.getLogger("cep_automation.broker.AckBatcher")

RETRY_DELAY_S = 1.0
GATHER_S = 0.05  # while backed up: how long a batch waits for company (the kill -9 window grows by as much)
PipelineOp = Callable[[Any], None]  # adds commands to a redis pipeline

_batchers: weakref.WeakKeyDictionary[Any, AckBatcher] = weakref.WeakKeyDictionary()


_rides: weakref.WeakSet[Any] = weakref.WeakSet()  # brokers on the Redis of our records (REDIS_URL)


def enable(broker: Any, *, same_redis: bool) -> None:
    """Batch the acks of this Redis broker's consumers (idempotent); ``same_redis``: records may ride along."""
    if broker not in _batchers:
        _batchers[broker] = AckBatcher(broker)
    if same_redis:
        _rides.add(broker)


def batcher_for(broker: Any) -> AckBatcher | None:
    return _batchers.get(broker)


def after_ack(broker: Any, message: Any, op: PipelineOp) -> bool:
    """Have ``op`` sent with this message's ack, in the same pipeline; False if it cannot ride (do it now).

    It cannot when the broker does not batch, or when the broker's Redis is not the one of our records.
    """
    if broker not in _rides:
        return False
    message.__dict__.setdefault("_cep_ops", []).append(op)
    return True


class AckBatcher:
    """One thread per broker and process that acks (or nacks) what worker threads hand it, in pipelines."""

    def __init__(self, broker: Any, *, backlog: Callable[[], int] = waiting) -> None:
        self.broker = broker
        self.backlog = backlog  # messages fetched and waiting for a worker thread
        self._pending: deque[tuple[Any, Any]] = deque()  # (consumer thread, message)
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self.sent_batches = 0  # since start: how well acks group (batches vs. messages)
        self.sent_messages = 0

    def submit(self, consumer_thread: Any, message: Any) -> None:
        """Ack or nack ``message`` (by ``message.failed``) soon, for the consumer that fetched it.

        The caller has run the ``before_ack``/``before_nack`` hooks, in its thread: they may read the
        message's exception, which the worker thread clears as soon as this returns.
        """
        self._pending.append((consumer_thread, message))
        if self._thread is None or not self._thread.is_alive():
            self._start()
        self._wake.set()

    def flush(self) -> None:
        """Send everything handed over so far, now, in this thread (a consumer stopping); retries until sent."""
        while self._pending:
            try:
                self._send_batch()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning("Acks not sent yet (%s); trying again in %.0f s", exc, RETRY_DELAY_S)
                time.sleep(RETRY_DELAY_S)

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cep-acks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if backed_up(self.backlog):
                time.sleep(GATHER_S)
            self._wake.clear()
            try:
                self._send_batch()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning("Acks not sent yet (%s); trying again in %.0f s", exc, RETRY_DELAY_S)
                time.sleep(RETRY_DELAY_S)
            except Exception:
                logger.exception("Sending a batch of acks failed; trying again")
                time.sleep(RETRY_DELAY_S)
            if self._pending:
                self._wake.set()

    def _send_batch(self) -> None:
        with self._send_lock:
            batch = [self._pending[i] for i in range(len(self._pending))]
            if not batch:
                return
            self._pipeline(batch)
            for _ in batch:
                self._pending.popleft()
            self.sent_batches += 1
            self.sent_messages += len(batch)
            for consumer_thread, message in batch:  # it left the prefetch count at submit (broker/consumer.py)
                consumer_thread.let_go(message)
                self.broker.emit_after("nack" if message.failed else "ack", message)

    def _pipeline(self, batch: list[tuple[Any, Any]]) -> None:
        broker, now = self.broker, current_millis()
        dispatch, keys = broker.scripts["dispatch"], [broker.namespace]

        def build(pipe: Any) -> None:
            for consumer_thread, message in batch:
                for op in message.__dict__.get("_cep_ops", ()):
                    op(pipe)
                evalsha(pipe, dispatch, keys, [
                    "nack" if message.failed else "ack", now, consumer_thread.queue_name, broker.broker_id,
                    broker.heartbeat_timeout, broker.dead_message_ttl, 0, broker._max_unpack_size(),
                    message.options["redis_message_id"]])

        # Every command runs; one that Redis refused is logged, not retried (a lost connection raises: retried).
        for reply in execute_loading(broker.client, build):
            if isinstance(reply, redis.ResponseError):
                logger.error("Redis refused a write sent with a batch of acks: %s", reply)


__all__ = ["AckBatcher", "after_ack", "batcher_for", "enable"]
