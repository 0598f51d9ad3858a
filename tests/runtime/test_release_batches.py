"""The release of held jobs in batches on the real Redis broker: one pipeline and one UPDATE per batch, passes
that loop until nothing due is left, releasers that share the rows (``FOR UPDATE SKIP LOCKED``), and the
guarantees of one job at a time kept: released once, after a crash too; a full queue keeps its jobs; a job that
cannot be enqueued is failed."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import dramatiq
import pytest

from cep_automation.records import scheduled_jobs
from cep_automation.runtime import backpressure, scheduling
from cep_automation.runtime.actor import CepActor

QUEUE, OTHER = "release-a", "release-b"


@pytest.fixture
def actors(redis_broker, monkeypatch):
    """Two jobs on our Redis broker that the releaser finds by name, one per queue."""

    def noop(n: int) -> None:
        pass

    declared = {name: dramatiq.actor(noop, actor_name=name, queue_name=queue, broker=redis_broker,
                                     actor_class=CepActor) for name, queue in (("rel.a", QUEUE), ("rel.b", OTHER))}
    real = scheduling.actor_named
    monkeypatch.setattr(scheduling, "actor_named", lambda name: declared[name] if name in declared else real(name))
    backpressure.forget()
    yield declared
    backpressure.forget()


@pytest.fixture
def queue_limits(monkeypatch):
    from cep_automation.settings import get_settings

    def set_limits(text: str) -> None:
        monkeypatch.setenv("CEP_QUEUE_LIMITS", text)
        get_settings.cache_clear()

    yield set_limits
    monkeypatch.undo()
    get_settings.cache_clear()


def hold_many(db, count: int, actor: str = "rel.a", queue: str = QUEUE, in_s: float = 30) -> list[str]:
    """``count`` held jobs due ``in_s`` from now, one millisecond apart; their message ids, earliest first."""
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=in_s)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for n, message_id in enumerate(ids):
        scheduled_jobs.hold(db, message_id=message_id, actor=actor, queue=queue, payload={"args": [], "kwargs": {
            "n": n}}, options={}, run_at=start + dt.timedelta(milliseconds=n))
    return ids


def delayed(broker, queue: str) -> list[str]:
    """Message ids in ``queue``'s delay queue, in the order they went in."""
    ids = broker.client.lrange(f"{broker.namespace}:{queue}.DQ", 0, -1)
    stored = broker.client.hmget(f"{broker.namespace}:{queue}.DQ.msgs", ids) if ids else []
    return [dramatiq.Message.decode(data).message_id for data in stored]


def statuses(db, ids: list[str]) -> dict[str, int]:
    rows = db.execute("SELECT status, count(*) AS n FROM scheduled_jobs WHERE message_id = ANY(%s) GROUP BY 1",
                      (ids,)).fetchall()
    return {row["status"]: row["n"] for row in rows}


def test_a_pass_releases_every_due_batch_in_run_at_order(db, redis_broker, actors):
    # Given 2,500 held jobs due within the lookahead and one due tomorrow
    ids = hold_many(db, 2500)
    later = hold_many(db, 1, in_s=86_400)
    # When one pass runs with batches of 1,000
    outcome = scheduling.release_due(limit=1000, releasers=1)
    # Then all 2,500 went to the delay queue in three batches, earliest first, and tomorrow's stays held
    assert (outcome.released, outcome.failed, outcome.batches) == (2500, 0, 3)
    assert delayed(redis_broker, QUEUE) == ids
    assert statuses(db, ids) == {"released": 2500} and statuses(db, later) == {"scheduled": 1}
    # And each one keeps its id and is guarded by its scheduled:<id> key
    message = dramatiq.Message.decode(redis_broker.client.hget(f"{redis_broker.namespace}:{QUEUE}.DQ.msgs",
                                                                redis_broker.client.lindex(
                                                                    f"{redis_broker.namespace}:{QUEUE}.DQ", 0)))
    assert message.options["idempotency_key"] == f"scheduled:{ids[0]}" and message.kwargs == {"n": 0}


def test_two_concurrent_releasers_release_each_job_exactly_once(db, redis_broker, actors):
    # Given 3,000 held jobs due now-ish
    ids = hold_many(db, 3000)
    barrier, outcomes = threading.Barrier(2), []

    def releaser() -> None:
        barrier.wait()
        outcomes.append(scheduling.release_due(limit=100, releasers=1))

    # When two releasers (as on two hosts) start together, each with small batches
    threads = [threading.Thread(target=releaser) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # Then between them every job was released once: never twice, none missed
    assert sum(o.released for o in outcomes) == 3000
    assert sorted(delayed(redis_broker, QUEUE)) == sorted(ids)
    assert statuses(db, ids) == {"released": 3000}


def test_a_crash_between_the_enqueue_and_the_commit_does_not_enqueue_twice(db, redis_broker, actors, monkeypatch):
    # Given 1,500 held jobs, and a releaser that dies after its first batch's enqueue, before marking the rows
    ids = hold_many(db, 1500)
    real = scheduled_jobs.mark_released_many

    def crash(conn, message_ids):
        raise RuntimeError("the releaser's process died here")

    monkeypatch.setattr(scheduled_jobs, "mark_released_many", crash)
    with pytest.raises(RuntimeError, match="died here"):
        scheduling.release_due(limit=1000, releasers=1)
    # Then the first batch is in Redis while its rows are still held (the transaction rolled back)
    assert len(delayed(redis_broker, QUEUE)) == 1000 and statuses(db, ids) == {"scheduled": 1500}
    # When the next pass runs
    monkeypatch.setattr(scheduled_jobs, "mark_released_many", real)
    outcome = scheduling.release_due(limit=1000, releasers=2)
    # Then the 1,000 are recognised by their scheduled:<id> keys (marked released, not enqueued again)
    assert outcome.released == 1500
    assert sorted(delayed(redis_broker, QUEUE)) == sorted(ids)
    assert statuses(db, ids) == {"released": 1500}


def test_a_queue_that_fills_mid_batch_keeps_the_rest_held_and_other_queues_go_on(db, redis_broker, actors,
                                                                                 queue_limits):
    # Given room for 30 jobs in one queue, 50 held for it and, due after them, 5 for another queue
    queue_limits(f"{QUEUE}=30/30")
    full = hold_many(db, 50)
    other = hold_many(db, 5, actor="rel.b", queue=OTHER, in_s=40)
    # When one pass runs
    outcome = scheduling.release_due(limit=1000, releasers=1)
    # Then the first 30 went, the other 20 wait for a later pass, and the other queue's jobs were released
    assert outcome.full == [QUEUE] and outcome.released == 35
    assert delayed(redis_broker, QUEUE) == full[:30] and statuses(db, full[30:]) == {"scheduled": 20}
    assert statuses(db, other) == {"released": 5}


def test_a_job_that_cannot_be_enqueued_fails_alone_in_its_batch(db, redis_broker, actors):
    ids = hold_many(db, 10)
    db.execute("UPDATE scheduled_jobs SET actor = 'gone.job' WHERE message_id = %s", (ids[4],))
    outcome = scheduling.release_due(limit=1000, releasers=1)
    assert (outcome.released, outcome.failed) == (9, 1)
    assert delayed(redis_broker, QUEUE) == ids[:4] + ids[5:]
    row = scheduled_jobs.get(db, ids[4])
    assert row["status"] == "failed" and "unknown job 'gone.job'" in row["error"]
