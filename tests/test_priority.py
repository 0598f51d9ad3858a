"""Priorities with aging on the real Redis broker: a worker starts the earliest deadline first (enqueue time plus
what the job's priority allows), so an old low-priority job goes ahead of fresh urgent ones, and one message can
be more urgent than its actor."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest

from cep_automation.flow.priority import PRIORITY_STEP_S, deadline_ms


def test_the_earliest_deadline_starts_first_and_old_work_is_not_starved(redis_broker):
    ran, gate, started = [], threading.Event(), threading.Event()

    @dramatiq.actor(actor_name="prio.gate", queue_name="prio-gate", priority=0, broker=redis_broker)
    def hold_the_thread() -> None:
        started.set()
        gate.wait(30)

    @dramatiq.actor(actor_name="prio.high", queue_name="prio-high", priority=0, broker=redis_broker)
    def high(name: str) -> None:
        ran.append(name)

    @dramatiq.actor(actor_name="prio.low", queue_name="prio-low", priority=10, broker=redis_broker)
    def low(name: str) -> None:
        ran.append(name)

    # Given a worker with one thread, busy, and room to fetch everything that waits
    worker = dramatiq.Worker(redis_broker, worker_threads=1, worker_timeout=100)
    worker.queue_prefetch = 50  # (Dramatiq's dramatiq_queue_prefetch setting)
    worker.start()
    hold_the_thread.send()
    assert started.wait(30)
    # When, while it is busy, these arrive: a low-priority job enqueued 200 s ago (it waited past its 100 s),
    # two fresh urgent ones, a low-priority job sent as urgent, and a fresh low-priority one
    old = low.message(name="low, waited 200 s")
    redis_broker.enqueue(old.copy(message_timestamp=old.message_timestamp - 200_000))
    for send in (lambda: high.send(name="high 1"),  # 10 ms apart: equal deadlines would be a tie, in any order
                 lambda: low.send_with_options(kwargs={"name": "low sent as urgent"}, priority=0),
                 lambda: high.send(name="high 2"),
                 lambda: low.send(name="low, fresh")):
        time.sleep(0.01)
        send()
    time.sleep(1)  # let the consumers fetch them all into the worker's line (nothing runs: the thread is held)
    gate.set()
    for queue in ("prio-high", "prio-low"):
        redis_broker.join(queue, timeout=30_000)
    worker.join()
    worker.stop()
    # Then they started by deadline: plain Dramatiq would have run both "high" first and the old job after them
    assert ran == ["low, waited 200 s", "high 1", "low sent as urgent", "high 2", "low, fresh"]


def test_a_queue_caps_how_long_its_jobs_wait_behind_fresher_work():
    class Message:
        queue_name, message_timestamp, options = "stats", 1_000_000, {}

    assert deadline_ms(Message(), actor_priority=10) == 1_000_000 + 60_000  # stats: at most 60 s, not 100
    Message.queue_name = "campaigns"
    assert deadline_ms(Message(), actor_priority=10) == 1_000_000 + int(10 * PRIORITY_STEP_S * 1000)


def test_a_priority_given_with_a_message_is_checked_and_carried(stub_broker):
    from cep_automation.errors import ScheduleError
    from cep_automation.runtime.enqueue import enqueue

    message = enqueue("stats.rollup", {}, priority="3").message
    assert message.options["priority"] == 3
    with pytest.raises(ScheduleError, match="priority -1 is not a whole number from 0"):
        enqueue("stats.rollup", {}, priority=-1)
