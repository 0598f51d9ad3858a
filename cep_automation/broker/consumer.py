"""A Dramatiq consumer thread that keeps what it holds through a broker outage.

Dramatiq 2.2's ``ConsumerThread`` loses work on a Redis restart in several ways, seen in our chaos runs:
on a connection error it drops its in-memory delay queue (retries waiting for their ETA) and, with its
consumer, the messages that consumer had fetched but not handed out yet; a due retry whose move to its queue
fails is dropped too. All of these stay in this live worker's unacked set, so nobody ever runs them. And an
error raised while it requeues on an unexpected failure (``LOADING`` while Redis reads its append-only file)
kills the thread: the worker stops consuming that queue for good.

:class:`SteadyConsumerThread` keeps all of it: the delay queue, and the fetched messages and unacked ids of
the broken consumer, carried over to the new one (they are still this worker's in Redis, and are handled as
if nothing happened); a due retry that cannot be moved yet goes back to the delay queue; and no error ends
the thread while the worker runs. :func:`install` puts it in place of Dramatiq's class; the
broker factory calls it, so both ``cep-automation worker`` and the plain ``dramatiq`` CLI get it.

On a broker that batches its acks (:mod:`cep_automation.broker.acks`), a finished message is handed to the
batcher instead of being acked by the worker thread, and a stopping consumer sends what is still pending; and
fetched messages wait for a worker thread ordered by their deadline (:mod:`cep_automation.flow.priority`:
priority with aging) instead of their actor's priority alone.

And it does not take the same Redis entry twice. Every enqueue gives a message a new ``redis_message_id``, so
a live consumer fetching an entry it still holds means Redis lost its first fetch (a Sentinel failover promoted
a replica that had not seen it, or a restart replayed an older append-only file): the copy is dropped, and the
ack of the copy being run removes the one entry both stand for. Without this both copies ran, each passing the
idempotency claim as "a redelivery of the same message".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq.common
import dramatiq.worker
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import iter_queue, q_name
from dramatiq.errors import ActorNotFound, BrokerConnectionError
from dramatiq.message import Message
from dramatiq.worker import _WorkQueueItem

from cep_automation import backlog
from cep_automation import options as opt
from cep_automation.broker import acks
from cep_automation.db.redis_client import evalsha, execute_loading
from cep_automation.flow import fairness, priority

RESTART_DELAY_S = 1.0
MOVE_BATCH = 500  # due delayed messages moved to their queue per pipeline
logger = logging.getLogger("cep_automation.broker.SteadyConsumerThread")


class SteadyConsumerThread(dramatiq.worker.ConsumerThread):
    """Dramatiq's consumer thread with the outage faults fixed (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        backlog.register(self.work_queue)  # its waiting messages say whether this process is backed up
        self.holding: set[str] = set()  # redis_message_id of each message fetched and not acked or nacked yet
        self._room = threading.Event()  # set when finished messages have made room to fetch again
        self._refill_at: int | None = None  # fetch again once the worker holds this many or fewer (see _fetched)

    def run(self) -> None:
        self.logger.debug("Running consumer thread...")
        self.running = True
        self.broker.emit_after("consumer_thread_boot", self)
        while self.running:
            if self.paused:
                self.paused_event.set()
                time.sleep(self.worker_timeout / 1000)
                continue
            try:
                self._consume()
            except BrokerConnectionError as exc:
                logger.warning("Consumer of %s lost the broker (%s); %d delayed message(s) kept",
                               self.queue_name, exc, self.delay_queue.qsize())
            except Exception:
                logger.exception("Consumer of %s failed; restarting it", self.queue_name)
            if self.running:
                self._drop_consumer()
                time.sleep(RESTART_DELAY_S)
        batcher = acks.batcher_for(self.broker)
        if batcher is not None:
            batcher.flush()  # the worker threads have stopped: what they finished is acked before we go
        self.broker.emit_before("consumer_thread_shutdown", self)

    def handle_message(self, message: Any) -> None:
        """Put a fetched message in the worker's line by its deadline (priority with aging) on our brokers;
        a delayed one, or one of a plain broker, as Dramatiq does. An entry this thread still holds is dropped."""
        entry = message.options.get("redis_message_id")
        if entry is not None:
            if entry in self.holding:
                logger.warning("Fetched %s (%s) again while still holding it: Redis lost the first fetch (failover or"
                               " restart); the second copy is dropped", message.message_id, message.actor_name)
                return
            self.holding.add(entry)
        if acks.batcher_for(self.broker) is None or message.options.get("eta") is not None:
            super().handle_message(message)
            return
        try:
            actor = self.broker.get_actor(message.actor_name)
        except ActorNotFound:
            super().handle_message(message)  # Dramatiq's path: dead-lettered, saying so
            return
        self.work_queue.put(_WorkQueueItem(priority.deadline_ms(message, actor.priority), message))

    def post_process_message(self, message: Any) -> None:
        """Ack or nack ``message``: through the broker's batcher when it has one, else as Dramatiq does."""
        try:
            self._finish(message)
        finally:
            if self._has_room():
                self._room.set()

    def _has_room(self) -> bool:
        """Whether the consumer may fetch now: what :meth:`_fetched` waits for, and what a finished message checks
        before it wakes the consumer. Waking it for every finished message (to find it still holds more than half
        its prefetch, and wait again) cost a context switch and a turn of the GIL per message: 0.9 wake-ups a lead
        in the ``lead.created`` benchmark, about one per refill now."""
        refill_at, consumer = self._refill_at, self.consumer
        if refill_at is None or consumer is None:
            return True
        held: int = getattr(consumer, "outstanding_message_count", 0)  # a Redis consumer (only ours sets refill_at)
        return held <= refill_at

    def _finish(self, message: Any) -> None:
        batcher = acks.batcher_for(self.broker)
        if batcher is None or self.consumer is None:
            super().post_process_message(message)
            self.let_go(message)
            return
        try:
            self.broker.emit_before("nack" if message.failed else "ack", message)
        except Exception:  # as Dramatiq: a hook's bug leaves the message unacked, to run again after a restart
            self.logger.exception("Unhandled error before acking %s; it will run again", message)
            self.let_go(message)
            return
        batcher.submit(self, message)
        # Finished: it no longer counts against the prefetch. Counted until its ack is sent, it kept the consumer
        # from fetching while a batch was on the wire, and the worker threads waited for work (0.56 of plain
        # Dramatiq's rate on a machine with slow round trips, CPU-bound at 0.79).
        consumer: Any = self.consumer  # a Redis consumer: only the Redis broker has a batcher
        consumer.queued_message_ids.discard(message.message_id)

    def let_go(self, message: Any) -> None:
        """``message`` was acked or nacked (or never will be by this process): a later fetch of it is news."""
        self.holding.discard(message.options.get("redis_message_id", ""))

    def _consume(self) -> None:
        previous = self.consumer
        self.consumer = self.broker.consume(queue_name=self.queue_name, prefetch=self.prefetch,
                                            timeout=self.worker_timeout)
        carry_over(previous, self.consumer)
        for message in self._fetched(self.consumer):
            if message is not None:
                self.handle_message(message)
            elif self.paused:
                break
            self.handle_delayed_messages()
            if not self.running:
                break

    def _fetched(self, consumer: Any) -> Iterator[Any]:
        """``consumer``'s messages, fetched in batches: on our Redis broker, once the worker holds more than half its
        prefetch, the next fetch waits until it holds half or less (Dramatiq fetches as soon as one message is done:
        a round trip per message at full load). Yields None, as Dramatiq's consumer does, when there is nothing new."""
        ours = acks.batcher_for(self.broker) is not None  # a plain broker in this process fetches as Dramatiq does
        self._refill_at = self.prefetch // 2 if ours and not self.queue_name.endswith(".DQ") else None
        while True:
            if not self._has_room() and not consumer.message_cache:  # room first: a plain consumer has no cache
                self._room.clear()
                if not self._has_room():  # still: wait for finished messages to make room
                    self._room.wait(timeout=self.worker_timeout / 1000)
                yield None
                continue
            yield next(consumer)

    def handle_delayed_messages(self) -> None:
        """Move due delayed messages (retries, jobs released ahead of their time) to their queue; one that cannot
        be moved now stays in the delay queue. On Redis the messages due at once go in one pipeline (up to
        :data:`MOVE_BATCH`): one thread per queue moves them all, and a round trip each would cap how many delayed
        jobs can start per second (100,000 due in one minute fell up to 20 s behind)."""
        while due := self._take_due(MOVE_BATCH):
            if isinstance(self.broker, RedisBroker):
                self._move_together(due)
            else:
                for index, item in enumerate(due):
                    try:
                        self._move(item)
                    except BaseException:
                        self._put_back(due[index:])
                        raise
            if len(due) < MOVE_BATCH:
                return

    def _take_due(self, most: int) -> list[Any]:
        """Up to ``most`` items of the delay queue whose time has come, taken out of it."""
        now, due = dramatiq.worker.current_millis(), []  # type: ignore[attr-defined]  # the clock Dramatiq's thread reads
        for item in iter_queue(self.delay_queue):  # type: ignore[no-untyped-call]  # dramatiq.common is unannotated
            if item.priority > now:
                self._put_back([item])
                break
            due.append(item)
            if len(due) >= most:
                break
        return due

    def _put_back(self, items: list[Any]) -> None:
        for item in items:
            self.delay_queue.put(item)
            self.delay_queue.task_done()

    def _move(self, item: Any) -> None:
        """Dramatiq's move of one due message: enqueue it on its queue, then ack it on the delay queue."""
        due = item.message.copy(queue_name=q_name(item.message.queue_name))
        del due.options["eta"]
        self.broker.enqueue(due)
        self.post_process_message(item.message)
        self.delay_queue.task_done()

    def _move_together(self, items: list[Any]) -> None:
        """:meth:`_move` for many messages, their enqueues in one pipeline (Dramatiq's own enqueue script, with
        the broker's enqueue hooks around each); the acks go through the batcher as every ack does."""
        broker: Any = self.broker  # a RedisBroker (handle_delayed_messages checked)
        moved = []
        for item in items:
            message = item.message.copy(queue_name=q_name(item.message.queue_name),
                                        options={"redis_message_id": str(uuid.uuid4())})
            del message.options["eta"]
            broker.emit_before("enqueue", message, None)
            moved.append(message)
        dispatch, keys, now = broker.scripts["dispatch"], [broker.namespace], dramatiq.common.current_millis()
        fair_script = fairness.script(broker.client)

        def build(pipe: Any) -> None:
            for message in moved:
                fair = message.options.get(opt.FAIRNESS_KEY)
                if fair:  # it takes its turn with other keys' jobs, as it would have without a delay
                    evalsha(pipe, fair_script, *fairness.enqueue_call(broker, message, fair))
                    continue
                evalsha(pipe, dispatch, keys, [
                    "enqueue", now, message.queue_name, broker.broker_id, broker.heartbeat_timeout,
                    broker.dead_message_ttl, 0, broker._max_unpack_size(), message.options["redis_message_id"],
                    message.encode()])

        try:
            replies = execute_loading(broker.client, build)
        except BaseException:
            self._put_back(items)
            raise
        refused = None
        for item, message, reply in zip(items, moved, replies, strict=True):
            if isinstance(reply, Exception):
                self._put_back([item])
                refused = refused or reply
                continue
            broker.emit_after("enqueue", message, None)
            self.post_process_message(item.message)
            self.delay_queue.task_done()
        if refused is not None:
            raise refused

    def _drop_consumer(self) -> None:
        """Close the broken consumer's connection without requeueing: what it held stays this worker's."""
        try:
            if self.consumer is not None:
                self.consumer.close()
        except Exception as exc:  # a dead connection may refuse to close; the next consume opens a new one
            logger.debug("Closing the consumer of %s failed: %s", self.queue_name, exc)
        # self.consumer stays: Worker.stop requeues through it (Redis's requeue needs no open connection).

    def close(self) -> None:
        """At shutdown: give the delayed messages back to their queue, and the fetched ones not handed out yet (a
        consumer stopped between two messages of a batch holds the rest; Dramatiq gives back its delay queue only);
        a failure leaves them to the sweep."""
        try:
            cache = getattr(self.consumer, "message_cache", None)
            if cache:
                fetched = [MessageProxy(Message.decode(data)) for data in cache if data is not None]
                cache.clear()
                self.requeue_messages(fetched)
            super().close()
        except Exception as exc:
            logger.warning("Could not requeue the delayed and fetched messages of %s at shutdown (%s); another worker's"
                           " requeue sweep will, once this worker's heartbeat is old", self.queue_name, exc)


def carry_over(previous: Any, current: Any) -> None:
    """Give the new consumer what the broken one held: fetched messages not handed out yet, unacked ids."""
    if previous is None or previous is current:
        return
    cache, held = getattr(previous, "message_cache", None), getattr(previous, "queued_message_ids", None)
    if isinstance(cache, list) and isinstance(getattr(current, "message_cache", None), list):
        current.message_cache[:0] = [data for data in cache if data is not None]
        cache.clear()
    if isinstance(held, set) and isinstance(getattr(current, "queued_message_ids", None), set):
        current.queued_message_ids |= held


def install() -> None:
    """Make every Dramatiq worker in this process use :class:`SteadyConsumerThread` (idempotent)."""
    dramatiq.worker.ConsumerThread = SteadyConsumerThread  # type: ignore[misc]  # a subclass, same signature


__all__ = ["SteadyConsumerThread", "install"]
