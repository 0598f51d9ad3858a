"""Schedules run in UTC, and a tick is sent and run once however many schedulers there are."""

from __future__ import annotations

import subprocess
import sys

import pendulum
import pytest

from cep_automation.actors import stats_rollup
from cep_automation.records import job_state
from cep_automation.runtime.enqueue import idempotency_key

TICK = "2026-11-25T02:00:00+00:00"


def test_schedules_are_utc(stub_broker):
    assert pendulum.now().timezone_name == "UTC"
    spec = stats_rollup.options["periodic"]
    assert spec.validate(pendulum.datetime(2026, 11, 25, 2, 0, tz="UTC"))
    assert not spec.validate(pendulum.datetime(2026, 11, 25, 3, 0, tz="UTC"))


def test_second_send_of_a_tick_is_not_enqueued(stub_broker):
    first = stats_rollup.send_with_options(scheduled_at=TICK)
    second = stats_rollup.send_with_options(scheduled_at=TICK)
    assert second.message_id == first.message_id
    assert stub_broker.queues["stats"].qsize() == 1
    # A manual send (no tick) is never deduplicated.
    stats_rollup.send()
    assert stub_broker.queues["stats"].qsize() == 2


SEND_TICK = """
import sys
from cep_automation.actors import stats_rollup
print(stats_rollup.send_with_options(scheduled_at=sys.argv[1]).message_id)
"""


@pytest.mark.slow
def test_two_scheduler_processes_racing_enqueue_once(process_env, redis_client):
    # Given two processes sending the same tick at the same moment to the real Redis broker
    env = process_env()
    procs = [subprocess.Popen([sys.executable, "-c", SEND_TICK, TICK], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    ids = {p.communicate(timeout=60)[0].strip() for p in procs}
    # Then both learn the same message id and the queue holds one message
    assert len(ids) == 1
    assert redis_client.llen(f"{env['CEP_NAMESPACE']}:stats") == 1


def test_duplicate_tick_that_reached_the_queue_runs_once(db, stub_broker, stub_worker):
    # Given two copies of one tick in the queue (e.g. the enqueue claim expired between two sends)
    tick = pendulum.now().replace(microsecond=0).isoformat()
    key = idempotency_key(stats_rollup, {}, {"scheduled_at": tick})
    assert key == f"stats.rollup@{tick}"
    sent = [stub_broker.enqueue(stats_rollup.message_with_options(scheduled_at=tick, idempotency_key=key))
            for _ in range(2)]
    # When a worker processes both
    stub_broker.join("stats")
    stub_worker.join()
    # Then one ran and the other was skipped
    assert sorted(job_state.get_job(m.message_id).state for m in sent) == ["completed", "skipped"]
