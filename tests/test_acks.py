"""Acks in groups on the real Redis broker: every finished message acked once, keys' outcomes sent with them,
nothing left unacked when a worker stops."""

from __future__ import annotations

import threading
import uuid

import dramatiq

from cep_automation import backlog
from cep_automation.broker import acks
from cep_automation.records import idempotency


def unacked(broker, redis_client) -> int:
    return sum(redis_client.scard(name) for name in redis_client.scan_iter(match=f"{broker.namespace}:__acks__.*"))


def run_all(broker, *, threads: int) -> None:
    """A worker with ``threads`` threads works through the "acks" queue, then stops."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    broker.join("acks", timeout=120_000)
    worker.join()
    worker.stop()


def test_acks_go_in_groups_and_each_keys_outcome_with_its_ack(redis_broker, redis_client):
    ran: list[int] = []

    @dramatiq.actor(actor_name="acks.job", queue_name="acks", broker=redis_broker)
    def job(n: int) -> None:
        ran.append(n)

    keys = [f"acks-{uuid.uuid4().hex}" for _ in range(400)]
    for n, key in enumerate(keys):
        job.send_with_options(args=(n,), idempotency_key=key)
    run_all(redis_broker, threads=8)

    assert sorted(ran) == list(range(400))
    assert {idempotency.run_state(key)["status"] for key in keys} == {"completed"}
    batcher = acks.batcher_for(redis_broker)
    assert batcher is not None and batcher.sent_messages == 400
    assert batcher.sent_batches < 400  # eight threads finishing no-op jobs: some acks went together
    assert unacked(redis_broker, redis_client) == 0


def test_a_backed_up_process_gathers_acks_before_sending_them(redis_broker, redis_client):
    ran: list[int] = []

    @dramatiq.actor(actor_name="acks.gathered", queue_name="acks", broker=redis_broker)
    def job(n: int) -> None:
        ran.append(n)

    batcher = acks.batcher_for(redis_broker)
    assert batcher is not None and batcher.backlog is backlog.waiting  # by default, the worker's own backlog
    batcher.backlog = lambda: 1  # as if fetched messages always waited for a thread
    for n in range(60):
        job.send(n)
    run_all(redis_broker, threads=1)

    assert sorted(ran) == list(range(60))
    assert batcher.sent_messages == 60
    # One thread, no-op jobs: without gathering nearly every ack is a round trip of its own (a batch holds what
    # finished while the previous one was on the wire); gathering for GATHER_S puts many in each.
    assert batcher.sent_batches * 4 <= 60
    assert unacked(redis_broker, redis_client) == 0


def test_a_stopping_worker_acks_what_it_finished_and_gives_back_the_rest(redis_broker, redis_client):
    started, release, ran = threading.Semaphore(0), threading.Event(), []

    @dramatiq.actor(actor_name="acks.slow", queue_name="acks", broker=redis_broker)
    def slow(n: int) -> None:
        started.release()
        release.wait(30)
        ran.append(n)

    for n in range(12):
        slow.send(n)
    worker = dramatiq.Worker(redis_broker, worker_threads=4, worker_timeout=100)
    worker.start()
    for _ in range(4):
        assert started.acquire(timeout=30)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    release.set()
    stopper.join(60)

    assert len(ran) >= 4
    waiting = redis_client.llen(f"{redis_broker.namespace}:acks")
    assert len(ran) + waiting == 12  # each message either ran and was acked, or is back in its queue
    assert unacked(redis_broker, redis_client) == 0



def test_a_pipeline_of_scripts_loads_them_only_when_redis_lacks_them(redis_client):
    from cep_automation.db.redis_client import evalsha, execute_loading, key, lua

    script = lua("return redis.call('INCR', KEYS[1])")
    counter = key("acks", "script-test")
    redis_client.script_flush()  # as after a Redis restart: the script is unknown
    assert execute_loading(redis_client, lambda pipe: evalsha(pipe, script, [counter], [])) == [1]
    assert execute_loading(redis_client, lambda pipe: evalsha(pipe, script, [counter], [])) == [2]  # known now
