"""Queue history: the minute snapshot measured from a real worker on Redis and PostgreSQL, the fold of minute
rows into hourly rows after 30 days, the 400-day retention, and one snapshot per tick however often it is sent."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid

import pendulum
import pytest

from cep_automation.records import queue_history
from cep_automation.testing import wait_for

SEND = """
import json, sys
from cep_automation.actors import broker
from cep_automation.runtime.enqueue import enqueue
for actor, payload in json.loads(sys.argv[1]):
    print(enqueue(actor, payload).message_id)
"""
NOW = dt.datetime(2026, 11, 20, 12, 30, 17, tzinfo=dt.UTC)


@pytest.fixture
def send_real(process_env):
    """Enqueue (actor, payload) pairs on the real Redis broker, from another process."""
    def send(jobs):
        subprocess.run([sys.executable, "-c", SEND, json.dumps(jobs)], env=process_env(), capture_output=True,
                       text=True, timeout=120, check=True)

    return send


def count(db, status):
    return db.execute("SELECT count(*) AS n FROM audit_log WHERE status = %s", (status,)).fetchone()["n"]


@pytest.mark.slow
def test_snapshots_measure_what_a_real_worker_did(db, redis_client, send_real, start_worker):
    # Given four rollups and two leads that do not exist (a permanent error: dead-lettered at once)
    started = dt.datetime.now(dt.UTC)
    send_real([["stats.rollup", {"date": f"2026-11-0{day}"}] for day in range(1, 5)]
              + [["lead.created", {"lead_id": str(uuid.uuid4())}] for _ in range(2)])
    # When a snapshot is taken before any worker runs, it sees them waiting
    before = queue_history.snapshot(dt.datetime.now(dt.UTC))
    assert (before["stats"]["waiting"], before["leads"]["waiting"]) == (4, 2)
    assert before["stats"]["completed"] == 0 and before["campaigns"]["waiting"] == 0
    time.sleep(1.5)  # a wait every first attempt must show
    start_worker("stats", "leads")
    wait_for(lambda: count(db, "completed") == 4 and count(db, "dead") == 2, timeout=90, what="jobs ended")
    # And one snapshot per minute is taken until the minute after the last audit row
    last = db.execute("SELECT max(created_at) AS t FROM audit_log").fetchone()["t"]
    tick = started.replace(second=0, microsecond=0) + queue_history.MINUTE
    while tick <= last + queue_history.MINUTE:
        queue_history.snapshot(tick)
        tick += queue_history.MINUTE
    # Then the minutes add up to what ran: completions, attempts, failures, dead letters and first waits
    totals = {row["queue"]: row for row in db.execute(
        "SELECT queue, sum(completed) AS completed, sum(attempts) AS attempts, sum(failed) AS failed,"
        " sum(dead_lettered) AS dead_lettered, sum(waits) AS waits, max(wait_p95_ms) AS p95, min(wait_p50_ms) AS p50"
        " FROM queue_history WHERE resolution = 'minute' GROUP BY queue")}
    stats, leads = totals["stats"], totals["leads"]
    assert (stats["completed"], stats["attempts"], stats["failed"], stats["waits"]) == (4, 4, 0, 4)
    assert (leads["completed"], leads["attempts"], leads["failed"], leads["dead_lettered"], leads["waits"]) == (
        0, 2, 2, 2, 2)
    assert 1_500 <= stats["p50"] <= stats["p95"] < 90_000
    # And the last snapshot saw the queues empty, with the two dead letters waiting for an operator
    latest = db.execute("SELECT queue, waiting, dead FROM queue_history WHERE period_start ="
                        " (SELECT max(period_start) FROM queue_history)").fetchall()
    assert {(r["queue"], r["waiting"], r["dead"]) for r in latest if r["queue"] in ("stats", "leads")} == {
        ("stats", 0, 0), ("leads", 0, 2)}


def minute_row(db, at, queue="leads", **values):
    row = {"waiting": 1, "delayed": 0, "dead": 0, "completed": 10, "attempts": 12, "failed": 2, "dead_lettered": 1,
           "waits": 10, "wait_p50_ms": 100, "wait_p95_ms": 900, **values}
    db.execute(f"INSERT INTO queue_history (resolution, period_start, queue, {', '.join(row)})"
               f" VALUES ('minute', %s, %s, {', '.join(['%s'] * len(row))})", (at, queue, *row.values()))


def test_minutes_older_than_30_days_fold_into_hours(db, cep_services):
    # Given two hours of minute rows 31 days ago, the last one with other figures, and a recent minute
    old = (NOW - dt.timedelta(days=31)).replace(minute=0, second=0, microsecond=0)
    for minute in range(120):
        minute_row(db, old + dt.timedelta(minutes=minute))
    minute_row(db, old + dt.timedelta(minutes=119, seconds=1), waiting=40, waits=30, wait_p50_ms=500,
               wait_p95_ms=7000)  # not a whole minute: a manual run's row
    minute_row(db, NOW - dt.timedelta(minutes=5))
    # When the history is downsampled
    folded, dropped = queue_history.downsample(NOW)
    # Then each old hour is one row: depths at their peak, counts summed, p50 weighted by waits, p95 the highest
    assert (folded, dropped) == (121, 0)
    hours = db.execute("SELECT * FROM queue_history WHERE resolution = 'hour' ORDER BY period_start").fetchall()
    assert [h["period_start"] for h in hours] == [old, old + dt.timedelta(hours=1)]
    assert (hours[0]["completed"], hours[0]["attempts"], hours[0]["failed"], hours[0]["samples"]) == (600, 720, 120, 60)
    assert (hours[0]["waiting"], hours[0]["wait_p50_ms"], hours[0]["wait_p95_ms"]) == (1, 100, 900)
    assert (hours[1]["waiting"], hours[1]["waits"], hours[1]["wait_p95_ms"], hours[1]["samples"]) == (40, 630, 7000, 61)
    assert hours[1]["wait_p50_ms"] == (600 * 100 + 30 * 500) // 630
    # And the recent minute stays; a second run finds nothing left to fold
    assert db.execute("SELECT count(*) AS n FROM queue_history WHERE resolution = 'minute'").fetchone()["n"] == 1
    assert queue_history.downsample(NOW) == (0, 0)


def test_hours_are_kept_400_days(db, cep_services):
    for days in (399, 401):
        db.execute("INSERT INTO queue_history (resolution, period_start, queue) VALUES ('hour', %s, 'stats')",
                   (NOW - dt.timedelta(days=days),))
    assert queue_history.downsample(NOW) == (0, 1)
    kept = db.execute("SELECT period_start FROM queue_history").fetchall()
    assert [r["period_start"] for r in kept] == [NOW - dt.timedelta(days=399)]


def test_one_snapshot_per_tick_however_many_schedulers_send_it(db, stub_broker, stub_worker):
    from cep_automation.actors import history_snapshot

    # Given two schedulers sending the same tick
    tick = pendulum.now("UTC").replace(second=0, microsecond=0)
    first = history_snapshot.send_with_options(scheduled_at=tick.isoformat())
    second = history_snapshot.send_with_options(scheduled_at=tick.isoformat())
    stub_broker.join("stats", fail_fast=True)
    stub_worker.join()
    # Then one message ran, and it wrote the minute before the tick for every queue of the policy table
    assert first.message_id == second.message_id
    rows = db.execute("SELECT period_start, queue FROM queue_history").fetchall()
    assert {r["period_start"] for r in rows} == {tick - dt.timedelta(minutes=1)}
    assert {r["queue"] for r in rows} == {"backup", "campaigns", "leads", "llm", "stats"}
