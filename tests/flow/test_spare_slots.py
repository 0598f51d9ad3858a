"""Concurrency slots handed from a finished job to the next job of its bucket, on the real Redis broker: the
limit still holds, fewer round trips are made, and what is kept is freed soon after."""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq

from cep_automation.flow import concurrency
from cep_automation.flow.limits import Limit
from cep_automation.flow.per_key import PerKey
from cep_automation.records import metrics
from cep_automation.runtime.actor import CepActor
from cep_automation.testing import wait_for


def run_limited(broker, monkeypatch, *, most: int, jobs: int, threads: int) -> tuple[int, int, int, str]:
    """Run ``jobs`` 5 ms jobs of one bucket under a concurrency limit of ``most``; (most running at once, times a
    slot was asked of Redis, times Redis granted one, the limit's name)."""
    name = f"handover-{uuid.uuid4().hex[:6]}"
    takes, running, peak, lock, done = [], [0], [0], threading.Lock(), threading.Event()
    real = concurrency.take

    def counted(*args, **kwargs):
        taken = real(*args, **kwargs)
        takes.append(taken.taken)
        return taken

    monkeypatch.setattr(concurrency, "take", counted)

    def job(n: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
            if n == jobs - 1:
                done.set()

    actor = dramatiq.actor(job, actor_name=f"{name}.job", queue_name="limited", broker=broker, actor_class=CepActor,
                           limits=[PerKey(Limit(name, concurrency=most), "all")], max_retries=50, min_backoff=5,
                           max_backoff=50)
    for n in range(jobs):
        actor.send(n=n)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    try:
        broker.join("limited", timeout=120_000)
        worker.join()
    finally:
        worker.stop()
    return peak[0], len(takes), sum(takes), name


def test_a_roomy_bucket_hands_its_slots_over(redis_broker, redis_client, monkeypatch):
    # Given a limit of 16 at once and 8 worker threads running 300 jobs of one bucket: it never binds
    peak, takes, _, name = run_limited(redis_broker, monkeypatch, most=16, jobs=300, threads=8)
    # Then few jobs asked Redis for a slot: a finished job handed its slot to the next
    assert takes < 60
    # And the slots kept are freed in Redis soon after the work ends
    holders = concurrency.holders_key(name, "all")
    wait_for(lambda: redis_client.zcard(holders) == 0, timeout=30, what="the kept slots to be freed")


def test_a_limit_holds_while_slots_are_handed_over(redis_broker, redis_client, monkeypatch):
    # Given a limit of 6 at once and 8 worker threads: slots are handed over while at most 3 are held
    peak, _, granted, name = run_limited(redis_broker, monkeypatch, most=6, jobs=300, threads=8)
    # Then never more than 6 ran at once, though many jobs ran on a slot handed over: Redis granted fewer slots than
    # jobs ran (129-134 of 300 in runs of 2026-12-01). Counting every ask instead counts the postponed jobs' asks
    # again, and how many there are is timing: 337-367 asks, which once failed this test as "367 < 300".
    assert peak <= 6
    assert granted < 300
    wait_for(lambda: redis_client.zcard(concurrency.holders_key(name, "all")) == 0, timeout=30,
             what="the kept slots to be freed")


def test_a_crowded_bucket_hands_nothing_over(redis_broker, redis_client, monkeypatch):
    # Given a limit of 1 at once: every slot taken fills its bucket
    peak, takes, _, name = run_limited(redis_broker, monkeypatch, most=1, jobs=40, threads=4)
    # Then one ran at a time, and every job asked Redis for its slot (postponed ones asked again)
    assert peak == 1
    assert takes >= 40
    assert redis_client.zcard(concurrency.holders_key(name, "all")) == 0
    # And the time the postponed ones waited is on /metrics, under the limit's name
    text = metrics.render()[0].decode()
    assert f'flow_limit_wait_seconds_count{{how="postponed",limit="{name}"}}' in text
