"""The fair feeder on the real Redis: it sleeps while no queue is fair, and feeds a fair queue once one appears."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from cep_automation import options as opt
from cep_automation.db.redis_client import key
from cep_automation.flow import fairness
from cep_automation.middleware.fairness import QUEUES_EVERY_S, FairFeeder
from cep_automation.testing import wait_for, wake_ups


@pytest.fixture
def feeding(cep_services):
    """A feeder running for a worker of two threads that consumes every queue; yields (broker, feeder thread)."""
    broker = RedisBroker(url=cep_services.redis_url, namespace=cep_services.namespace, middleware=[])
    feeder = FairFeeder()
    before = set(threading.enumerate())
    feeder.after_worker_boot(broker, SimpleNamespace(consumer_whitelist=None, worker_threads=2))
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "cep-fair-feeder"]
    try:
        yield broker, thread
    finally:
        feeder.before_worker_shutdown(broker, None)
        thread.join(timeout=5)
        broker.close()


def test_with_no_fair_queue_the_feeder_only_wakes_to_read_the_set(feeding):
    # Given a worker whose queues have no fair jobs
    _, thread = feeding
    # When it runs for three reads of the set of fair queues
    start = wake_ups(thread)
    time.sleep(3 * QUEUES_EVERY_S)
    # Then its feeder woke about once a read (a wait and a socket read each), not every FEED_EVERY_S (60 times)
    assert wake_ups(thread) - start <= 12


def test_a_queue_that_becomes_fair_is_fed(feeding, redis_client):
    broker, _ = feeding
    # Given a running feeder that has seen no fair queue yet
    time.sleep(0.2)
    # When fair jobs arrive for a queue
    for n in range(6):
        fairness.enqueue(broker, Message(queue_name="uploads", actor_name="x", args=(), kwargs={"n": n},
                                         options={opt.FAIRNESS_KEY: f"campus:{n % 2}"}), f"campus:{n % 2}")
    # Then, once the feeder reads the set again, it moves them to the queue, up to two a worker thread
    wait_for(lambda: redis_client.llen(key("uploads")) == 4, timeout=5 * QUEUES_EVERY_S,
             what="the feeder to top the queue up to four jobs")
    assert fairness.waiting("uploads") == 2
