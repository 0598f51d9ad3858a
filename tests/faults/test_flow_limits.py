"""Declared job limits (actor option ``limits``) hold across two real worker processes on real Redis, and a job
over its limit waits its turn without using up an attempt (the actors allow no retries) and without being lost."""

from __future__ import annotations

import time

import pytest

from cep_automation.db.redis_client import key
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
MODULES = ("flow_actors",)


def noted(redis_client, name: str, what: str) -> list[str]:
    return [v.decode() for v in redis_client.lrange(key("test", "flow", name, what), 0, -1)]


def overlaps(redis_client, name: str, bucket: str) -> list[tuple[float, float]]:
    """Finished runs of ``bucket`` that started before the one before them had ended (all on one host's clock)."""
    runs = sorted(tuple(float(t) for t in run.split(":")) for run in noted(redis_client, name, f"runs:{bucket}"))
    return [later for earlier, later in zip(runs, runs[1:], strict=False) if later[0] < earlier[1]]


def test_one_run_per_key_at_a_time_across_processes(fault_env, workers, producer, redis_client):
    # Given two worker processes of four threads each, and 8 jobs for each of two campuses
    for _ in range(2):
        workers(fault_env(), threads=4, modules=MODULES)
    send = producer()
    for n in range(8):
        for campus in (1, 2):
            send.send("faults.one_per_campus", campus_id=campus, n=n)
    # When they have all run (none may be lost: each is tried once, postponed as often as its campus is busy)
    wait_for(lambda: len(noted(redis_client, "one_per_campus", "done")) == 16, timeout=120,
             what="every job to run once")
    # Then no campus ever had two runs at once, though the two campuses ran side by side
    for campus in (1, 2):
        assert len(noted(redis_client, "one_per_campus", f"runs:campus:{campus}")) == 8
        assert overlaps(redis_client, "one_per_campus", f"campus:{campus}") == []
    assert sorted(noted(redis_client, "one_per_campus", "done")) == sorted(
        f"campus:{c}:{n}" for c in (1, 2) for n in range(8))


def test_a_rate_per_key_is_shared_by_processes(fault_env, workers, producer, redis_client):
    # Given two worker processes and 10 jobs of one account limited to 5 a second (one every 200 ms)
    for _ in range(2):
        workers(fault_env(), threads=4, modules=MODULES)
    send = producer()
    for n in range(10):
        send.send("faults.paced", account="acme", n=n)
    wait_for(lambda: len(noted(redis_client, "paced", "done")) == 10, timeout=120, what="every job to run once")
    # Then they were admitted one every 200 ms, whichever process ran them: the ten starts span at least the nine
    # intervals (less the first start's own delay after its admission), and no second holds more than the rate
    # allows (a start may lag its admission on a busy machine, which can only bunch a few together)
    started = sorted(float(t) for t in noted(redis_client, "paced", "started"))
    assert started[-1] - started[0] >= 1.4
    assert max(sum(1 for t in started if s <= t < s + 1.0) for s in started) <= 7


def test_kill_9_while_jobs_wait_on_a_limit_loses_nothing(fault_env, workers, producer, redis_client, janitor):
    # Given two workers working through 6 jobs for each of two campuses, one run per campus at a time
    first = workers(fault_env(), threads=2, modules=MODULES)
    workers(fault_env(), threads=2, modules=MODULES)
    send = producer()
    for n in range(6):
        for campus in (1, 2):
            send.send("faults.one_per_campus", campus_id=campus, n=n, hold_s=1.0)
    # When one worker process is killed while jobs run and others wait for their campus's slot
    wait_for(lambda: len(noted(redis_client, "one_per_campus", "done")) >= 2, timeout=60, what="some jobs to run")
    first.kill_worker_process()
    first.wait(timeout=60)
    # Then, its messages given back (a killed job keeps its own slot: its redelivery takes it again at once),
    # every job runs, and no campus ever had two runs at once
    wait_for(lambda: janitor(2000) or {f"campus:{c}:{n}" for c in (1, 2) for n in range(6)} <= set(
        noted(redis_client, "one_per_campus", "done")), timeout=180, what="every job to run")
    for campus in (1, 2):
        assert overlaps(redis_client, "one_per_campus", f"campus:{campus}") == []


def send_ordered(send, account: str, n: int, fail_first: bool, delay: int | None = None) -> None:
    """Enqueue as our enqueue path does for a job with an ordering key: the message and its place in line at once
    (with a ``delay``: in its line now, on its queue when due, where it takes its turn when fetched)."""
    from dramatiq import Message

    from cep_automation import options as opt
    from cep_automation.flow.ordering import line_key
    from cep_automation.records.broker_state import enqueue_once

    order = f"account:{account}"
    message = Message(queue_name="leads", actor_name="faults.ordered", args=(),
                      kwargs={"account": account, "n": n, "fail_first": fail_first}, options={opt.ORDERING_KEY: order})
    enqueue_once(send.broker, message, delay, None, 0, line_key(order))


def test_jobs_of_one_ordering_key_run_in_order_across_processes_retries_included(fault_env, workers, producer,
                                                                                  redis_client):
    # Given two worker processes of four threads, and 8 jobs for each of 6 accounts, one in five failing its
    # first try (retried 100-200 ms later)
    for _ in range(2):
        workers(fault_env(), threads=4, modules=MODULES)
    send = producer()
    accounts = [f"a{i}" for i in range(6)]
    for n in range(8):
        for account in accounts:
            send_ordered(send, account, n, fail_first=(n % 5 == 2))
    # When every job has run
    def done(account: str) -> list[int]:
        return [int(n) for n in noted(redis_client, "ordered", f"done:{account}")]

    wait_for(lambda: all(len(done(a)) == 8 for a in accounts), timeout=180, what="every job to run")
    # Then each account's jobs ran in the order they were sent, the retried ones holding the next ones back
    assert {a: done(a) for a in accounts} == {a: list(range(8)) for a in accounts}
    assert all(redis_client.llen(key("flow", "order", f"account:{a}")) == 0 for a in accounts)


def test_delayed_jobs_of_one_ordering_key_take_their_turn_when_fetched(fault_env, workers, producer, redis_client):
    # Given 6 jobs for each of 4 accounts, all due together in a second (not parked at enqueue: delayed)
    workers(fault_env(), threads=4, modules=MODULES)
    send = producer()
    accounts = [f"d{i}" for i in range(4)]
    for n in range(6):
        for account in accounts:
            send_ordered(send, account, n, fail_first=(n == 1), delay=1000)

    def done(account: str) -> list[int]:
        return [int(n) for n in noted(redis_client, "ordered", f"done:{account}")]

    # When every job has run
    wait_for(lambda: all(len(done(a)) == 6 for a in accounts), timeout=180, what="every job to run")
    # Then each account's jobs still ran in the order they were sent
    assert {a: done(a) for a in accounts} == {a: list(range(6)) for a in accounts}
    assert all(redis_client.llen(key("flow", "order", f"account:{a}")) == 0 for a in accounts)


def fair_jobs():
    """200 jobs of uploader "big", then 10 of "small", each with its uploader as fairness key: (key, message)."""
    from dramatiq import Message

    from cep_automation import options as opt

    for uploader, count in (("big", 200), ("small", 10)):
        for n in range(count):
            yield uploader, Message(queue_name="leads", actor_name="faults.fair", args=(),
                                    kwargs={"uploader": uploader, "n": n}, options={opt.FAIRNESS_KEY: uploader})


def where_small_finished(redis_client) -> tuple[int, list[str]]:
    """Once all 210 fair jobs ran, each once: the position of the small uploader's last, and the order."""
    wait_for(lambda: len(noted(redis_client, "fair", "done")) == 210, timeout=180, what="every job to run")
    order = noted(redis_client, "fair", "done")
    assert sorted(order) == sorted([f"big:{n}" for n in range(200)] + [f"small:{n}" for n in range(10)])
    return max(i for i, job in enumerate(order) if job.startswith("small:")), order


def test_a_small_key_is_not_stuck_behind_a_big_one(fault_env, workers, producer, redis_client):
    from cep_automation.flow import fairness

    # Given one uploader with 200 jobs waiting, then another with 10, all with fairness keys
    send = producer()
    for uploader, message in fair_jobs():
        fairness.enqueue(send.broker, message, uploader)
    assert fairness.waiting("leads") == 210 and redis_client.llen(key("leads")) == 0  # not on the queue yet
    # When a worker of two threads works through them
    workers(fault_env(), threads=2, modules=MODULES)
    # Then the small uploader's jobs took turns with the big one's: its last finished long before the 200 did
    last_small, order = where_small_finished(redis_client)
    assert last_small < 40, order[:60]
    assert fairness.waiting("leads") == 0


def test_delayed_jobs_take_turns_between_keys_when_due(fault_env, workers, producer, redis_client):
    from dramatiq.common import current_millis

    from cep_automation.flow import fairness

    # Given a worker of two threads, and 200 delayed jobs of one uploader followed by 10 of another, due together
    workers(fault_env(), threads=2, modules=MODULES)
    send = producer()
    due_at = current_millis() + 3_000
    for _, message in fair_jobs():
        send.broker.enqueue(message, delay=due_at - current_millis())
    # When they come due and the worker works through them
    # Then they went through their keys' lists, as jobs without a delay do: the small uploader's did not wait
    # behind the big one's 200
    last_small, order = where_small_finished(redis_client)
    assert last_small < 60, order[:80]
    assert fairness.waiting("leads") == 0


def test_a_worker_process_starts_urgent_jobs_before_routine_ones_and_ages_the_old(fault_env, workers, producer,
                                                                                  redis_client):
    from dramatiq import Message

    # Given a worker process of one thread, held by a routine job
    workers(fault_env(), threads=1, modules=MODULES, queues=("prio-high", "prio-low"))
    send = producer()
    send.send("faults.gate", queue="prio-low")
    wait_for(lambda: noted(redis_client, "prio", "started") == ["gate"], timeout=30, what="the gate job to start")
    # When one routine job enqueued 200 s ago (past its 100 s allowance) waits, then 20 fresh routine ones, then
    # 3 urgent ones
    old = Message(queue_name="prio-low", actor_name="faults.routine", args=(), kwargs={"name": "routine, old"},
                  options={})
    send.broker.enqueue(old.copy(message_timestamp=old.message_timestamp - 200_000))
    for n in range(20):
        send.send("faults.routine", queue="prio-low", name=f"routine {n}")
    for n in range(3):
        send.send("faults.urgent", queue="prio-high", name=f"urgent {n}")
    time.sleep(2.0)  # the worker's consumers fetch what their prefetch allows; nothing runs (the thread is held)
    redis_client.set(key("test", "flow", "prio", "open"), 1)
    wait_for(lambda: len(noted(redis_client, "prio", "started")) == 25, timeout=60, what="every job to start")
    # Then, after the gate, the old job went first (aged past the urgent ones: plain Dramatiq would run the urgent
    # ones first, by their actor's priority), then the urgent ones, though fresh routine jobs were fetched too
    started = noted(redis_client, "prio", "started")
    assert started[1:5] == ["routine, old", "urgent 0", "urgent 1", "urgent 2"], started
    assert sorted(started[5:]) == sorted(f"routine {n}" for n in range(20))
