"""Actors with declared limits, loaded by the worker processes of ``test_flow_limits.py``::

    dramatiq cep_automation.actors flow_actors --queues leads

Each run that finishes notes in Redis when it started and ended, so the test can see whether two runs of one key
overlapped, across processes (a run killed with its worker notes nothing).
"""

from __future__ import annotations

import time

import dramatiq

from cep_automation.db.redis_client import get_redis, key
from cep_automation.flow import Limit
from cep_automation.flow.per_key import PerKey


def note_run(name: str, bucket: str, n: int, hold_s: float) -> None:
    client = get_redis()
    started = time.time()
    client.rpush(key("test", "flow", name, "started"), f"{started:.3f}")
    time.sleep(hold_s)
    client.rpush(key("test", "flow", name, "runs", bucket), f"{started:.6f}:{time.time():.6f}")
    client.rpush(key("test", "flow", name, "done"), f"{bucket}:{n}")


@dramatiq.actor(actor_name="faults.one_per_campus", queue_name="leads", max_retries=0, time_limit=30_000,
                limits=[PerKey(Limit("faults.one_per_campus", concurrency=1), key="campus:{campus_id}")])
def one_per_campus(campus_id: int, n: int, hold_s: float = 0.2) -> None:
    """At most one run per campus at a time, whichever process runs it; no retries: a postponement is free."""
    note_run("one_per_campus", f"campus:{campus_id}", n, hold_s)


@dramatiq.actor(actor_name="faults.paced", queue_name="leads", max_retries=0, time_limit=30_000,
                limits=[PerKey(Limit("faults.paced", rate=5, period_s=1, burst=1), key="account")])
def paced(account: str, n: int) -> None:
    """Five runs a second per account, shared by every process."""
    note_run("paced", account, n, 0.0)


@dramatiq.actor(actor_name="faults.ordered", queue_name="leads", max_retries=5, min_backoff=100, max_backoff=200,
                time_limit=30_000)
def ordered(account: str, n: int, fail_first: bool = False) -> None:
    """Notes its number when done; fails its first try when asked (a transient error: it is retried)."""
    from cep_automation.errors import TransientError

    client = get_redis()
    if fail_first and client.incr(key("test", "flow", "ordered", "tries", f"{account}:{n}")) == 1:
        raise TransientError("a provider hiccup")
    time.sleep(0.02)
    client.rpush(key("test", "flow", "ordered", "done", account), n)


@dramatiq.actor(actor_name="faults.fair", queue_name="leads", max_retries=0, time_limit=30_000)
def fair(uploader: str, n: int) -> None:
    """Notes which uploader's job finished, in the order they finish."""
    time.sleep(0.01)
    get_redis().rpush(key("test", "flow", "fair", "done"), f"{uploader}:{n}")


@dramatiq.actor(actor_name="faults.gate", queue_name="prio-low", priority=10, max_retries=0, time_limit=60_000)
def gate() -> None:
    """Holds its thread until the test opens the gate (a Redis key), so that work piles up behind it."""
    client = get_redis()
    client.rpush(key("test", "flow", "prio", "started"), "gate")
    deadline = time.monotonic() + 30
    while not client.exists(key("test", "flow", "prio", "open")) and time.monotonic() < deadline:
        time.sleep(0.02)


@dramatiq.actor(actor_name="faults.urgent", queue_name="prio-high", priority=0, max_retries=0, time_limit=30_000)
def urgent(name: str) -> None:
    """A priority-0 job: notes its name when it starts, then takes longer than the consumer's longest poll (1 s),
    so the next urgent job is fetched while it runs."""
    get_redis().rpush(key("test", "flow", "prio", "started"), name)
    time.sleep(1.2)


@dramatiq.actor(actor_name="faults.routine", queue_name="prio-low", priority=10, max_retries=0, time_limit=30_000)
def routine(name: str) -> None:
    """A priority-10 job (100 s of allowance): notes its name when it starts."""
    get_redis().rpush(key("test", "flow", "prio", "started"), name)
    time.sleep(0.05)
