"""Declared job limits (actor option ``limits``) hold across two real worker processes on real Redis, and a job
over its limit waits its turn without using up an attempt (the actors allow no retries) and without being lost."""

from __future__ import annotations

import pytest

from cep_automation.db.redis_client import key
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
MODULES = ("flow_actors",)


def noted(redis_client, name: str, what: str) -> list[str]:
    return [v.decode() for v in redis_client.lrange(key("test", "flow", name, what), 0, -1)]


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
        assert set(noted(redis_client, "one_per_campus", f"seen:campus:{campus}")) == {"1"}
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
    # Then they started no closer than the rate allows, whichever process ran them (a 50 ms margin for clocks)
    started = sorted(float(t) for t in noted(redis_client, "paced", "started"))
    assert all(later - earlier >= 0.15 for earlier, later in zip(started, started[1:], strict=False))
