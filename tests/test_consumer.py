"""The consumer thread's delay queue on the real Redis broker: due messages move to their queue together, in
pipelines, and a move that fails keeps them for the next try (none lost, none run twice)."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import dramatiq.brokers.redis as dramatiq_redis
import redis

from cep_automation import backlog
from cep_automation.broker import consumer
from cep_automation.testing import wake_ups


def counting(broker, queue: str, count: int, nap_s: float = 0.0) -> tuple[Any, list[int], threading.Event]:
    """An actor ``<queue>.count`` that notes each ``n`` it runs (after ``nap_s``); ``done`` is set at ``count``."""
    ran, lock, done = [], threading.Lock(), threading.Event()

    @dramatiq.actor(actor_name=f"{queue}.count", queue_name=queue, broker=broker)
    def count_one(n: int) -> None:
        if nap_s:
            time.sleep(nap_s)
        with lock:
            ran.append(n)
            if len(ran) >= count:
                done.set()

    return count_one, ran, done


def run_delayed(broker, count: int) -> tuple[list[int], threading.Event]:
    noop, ran, done = counting(broker, "delayed", count)
    for n in range(count):
        noop.send_with_options(kwargs={"n": n}, delay=3000)  # all fetched before the first is due
    return ran, done


def all_ran(broker, done: threading.Event) -> bool:
    """Work the broker with 4 threads until ``done``, then a moment more (a message run twice would show)."""
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    try:
        finished = done.wait(60)
        time.sleep(0.3)
    finally:
        worker.stop()
    return finished


def test_due_delayed_messages_move_to_their_queue_in_pipelines(redis_broker, monkeypatch):
    pipelines = []
    real = consumer.execute_loading
    monkeypatch.setattr(consumer, "execute_loading", lambda client, build: pipelines.append(1) or real(client, build))
    # Given 1,200 messages due together in 3 s
    ran, done = run_delayed(redis_broker, 1200)
    # Then each runs once, moved by far fewer round trips than messages
    assert all_ran(redis_broker, done)
    assert sorted(ran) == list(range(1200))
    assert 0 < len(pipelines) < 100


def test_a_move_that_fails_keeps_the_messages_for_the_next_try(redis_broker, monkeypatch):
    failures = []
    real = consumer.execute_loading

    def flaky(client, build):
        if not failures:
            failures.append(1)
            raise redis.ConnectionError("Redis went away mid-move")
        return real(client, build)

    monkeypatch.setattr(consumer, "execute_loading", flaky)
    monkeypatch.setattr(consumer, "RESTART_DELAY_S", 0.05)
    # Given 300 delayed messages, and the first move's round trip lost
    ran, done = run_delayed(redis_broker, 300)
    # Then the consumer restarts with its delay queue kept, and every message runs once
    assert all_ran(redis_broker, done)
    assert failures and sorted(ran) == list(range(300))


def test_an_entry_fetched_again_while_held_runs_once(redis_broker, redis_client):
    # Given a job running on a worker, its Redis entry back in its queue as a failover to a replica that had
    # not seen the fetch leaves it (Dramatiq's requeue puts it there the same way)
    runs, running, release = [], threading.Event(), threading.Event()

    @dramatiq.actor(actor_name="held.once", queue_name="held", broker=redis_broker)
    def held() -> None:
        runs.append(dramatiq.middleware.CurrentMessage.get_current_message().options["redis_message_id"])
        running.set()
        release.wait(30)

    held.send()
    queue = f"{redis_broker.namespace}:held"
    worker = dramatiq.Worker(redis_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        assert running.wait(30)
        redis_broker.do_requeue("held", runs[0])
        # When the consumer fetches that entry again while the first copy still runs
        deadline = time.monotonic() + 30
        while redis_client.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        release.set()
        worker.join()
    finally:
        release.set()
        worker.stop()
    # Then the job ran once, and its one entry is acked: nothing of it is left in Redis
    assert len(runs) == 1
    assert redis_client.llen(queue) == 0 and redis_client.hlen(f"{queue}.msgs") == 0
    assert not [name for name in redis_client.scan_iter(match=f"{redis_broker.namespace}:__acks__*")
                if redis_client.zcard(name)]


def test_a_busy_worker_fetches_as_soon_as_there_is_room_without_sleeping(redis_broker, monkeypatch):
    """Plain Dramatiq's consumer, holding its whole prefetch, sleeps a back-off (10 ms and more) before it looks
    again, and the worker threads run dry meanwhile; ours waits for a finished message and fetches at once."""
    noop, ran, done = counting(redis_broker, "fetched", 2000)
    idle: list[int] = []
    real_backoff = dramatiq_redis.compute_backoff

    def backoff(*args, **kwargs):  # a consumer found nothing to hand out and sleeps this long
        if getattr(threading.current_thread(), "queue_name", None) == "fetched":
            idle.append(len(ran))
        return real_backoff(*args, **kwargs)

    monkeypatch.setattr(dramatiq_redis, "compute_backoff", backoff)
    # Given 2,000 messages waiting
    for n in range(2000):
        noop.send(n)
    # When a worker with 4 threads (a prefetch of 8) runs them
    assert all_ran(redis_broker, done)
    # Then each ran once, and the consumer never slept while the queue still held messages (fewer than 1,992 run:
    # at most 8 are fetched ahead)
    assert sorted(ran) == list(range(2000))
    assert [n for n in idle if n < 2000 - 8] == []


def test_waiting_counts_fetched_messages_no_thread_has_taken_yet(redis_broker):
    """What the step fan-out reads as a backlog: messages fetched by this process, waiting for a busy thread."""
    release, started = threading.Event(), threading.Event()

    @dramatiq.actor(actor_name="waiting.block", queue_name="waiting", broker=redis_broker)
    def block(n: int) -> None:
        started.set()
        release.wait(30)

    for n in range(4):
        block.send(n)
    worker = dramatiq.Worker(redis_broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10
        while backlog.waiting() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        # One runs; Dramatiq fetches two per thread, so one more waits for the thread (the other two stay in Redis).
        assert backlog.waiting() == 1
        release.set()
        redis_broker.join("waiting", timeout=30_000)
        worker.join()
        assert backlog.waiting() == 0
    finally:
        release.set()
        worker.stop()


def test_a_busy_consumer_wakes_once_a_refill_not_once_a_message(redis_broker):
    """A consumer holding more than half its prefetch waits for room; a finished message wakes it only once there
    is room to fetch (woken for every message, it found none and waited again: a context switch and a turn of the
    GIL a message, 0.9 a lead in the ``lead.created`` benchmark)."""
    # (each run naps 2 ms: the worker threads are the bottleneck, not the consumer)
    nap, ran, done = counting(redis_broker, "refill", 800, nap_s=0.002)
    # Given 800 messages waiting
    for n in range(800):
        nap.send(n)
    # When a worker with 16 threads (a prefetch of 32: it fetches again once it holds 16) runs them
    worker = dramatiq.Worker(redis_broker, worker_threads=16, worker_timeout=100)
    worker.start()
    try:
        thread = worker.consumers["refill"]
        start = wake_ups(thread)
        assert done.wait(60)
        woke = wake_ups(thread) - start
    finally:
        worker.stop()
    # Then each ran once, and its consumer woke for about a refill of sixteen (about 200 times), not for each
    # message (500 to 1,200 times when it did)
    assert sorted(ran) == list(range(800))
    assert woke < 400, f"the consumer woke {woke} times for 800 messages"
