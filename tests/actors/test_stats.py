"""stats.rollup through the StubBroker and called directly."""

from __future__ import annotations

import datetime as dt

import pytest

from cep_automation.actors import stats_rollup
from cep_automation.domain import rollups
from cep_automation.errors import PayloadError
from cep_automation.records import job_state


def add_lead(db, created_at: str, run_id=None, campaign_id=None, consent=True) -> None:
    db.execute(
        "INSERT INTO leads (name, email, course_run_id, campaign_id, consent_at, created_at)"
        " VALUES ('Ana', 'ana@example.com', %s, %s, CASE WHEN %s THEN now() END, %s)",
        (run_id, campaign_id, consent, created_at),
    )


@pytest.fixture
def catalogue(db):
    """Two campuses, two courses, a telemático run and a campaign."""
    madrid = db.execute("INSERT INTO campuses (name) VALUES ('Madrid') RETURNING id").fetchone()["id"]
    course = "INSERT INTO courses (title, offer_type) VALUES (%s, %s) RETURNING id"
    c1 = db.execute(course, ("Python", "privados")).fetchone()["id"]
    c2 = db.execute(course, ("Excel", "ocupados")).fetchone()["id"]
    run_madrid = db.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                            (c1, madrid)).fetchone()["id"]
    run_online = db.execute("INSERT INTO course_runs (course_id) VALUES (%s) RETURNING id", (c2,)).fetchone()["id"]
    campaign = db.execute("INSERT INTO campaigns (name, tracking_tag) VALUES ('Otoño', 'otono') RETURNING id"
                          ).fetchone()["id"]
    return {"madrid": madrid, "python": c1, "excel": c2, "run_madrid": run_madrid, "run_online": run_online,
            "campaign": campaign}


def rows(db):
    return db.execute(
        "SELECT granularity, dimension, period_start, key_id, leads, consented FROM lead_rollups ORDER BY 1, 2, 3, 4"
    ).fetchall()


def test_daily_rollup_counts_by_every_dimension(db, catalogue, redis_client):
    # Given three leads on 10 Nov (one online, one unattributed, one without consent) and one on 11 Nov
    add_lead(db, "2026-11-10T08:00:00Z", catalogue["run_madrid"], catalogue["campaign"])
    add_lead(db, "2026-11-10T23:59:59Z", catalogue["run_online"], None, consent=False)
    add_lead(db, "2026-11-10T00:00:00Z", catalogue["run_madrid"], None)
    add_lead(db, "2026-11-11T00:00:00Z", catalogue["run_madrid"], catalogue["campaign"])

    # When the daily rollup of 10 Nov runs
    result = stats_rollup(date="2026-11-10", granularity="daily")

    # Then only 10 Nov's leads count, split by course, campus (0 = telemático) and campaign (0 = none)
    assert result["rollups"]["daily"]["leads"] == 3
    got = {(r["dimension"], r["key_id"]): (r["leads"], r["consented"]) for r in rows(db)}
    assert got == {
        ("total", 0): (3, 2),
        ("course", catalogue["python"]): (2, 2),
        ("course", catalogue["excel"]): (1, 0),
        ("campus", catalogue["madrid"]): (2, 2),
        ("campus", 0): (1, 0),
        ("campaign", catalogue["campaign"]): (1, 1),
        ("campaign", 0): (2, 1),
    }


def test_rerun_gives_the_same_rows_and_drops_stale_keys(db, catalogue, redis_client):
    add_lead(db, "2026-11-10T08:00:00Z", catalogue["run_madrid"], catalogue["campaign"])
    add_lead(db, "2026-11-10T09:00:00Z", catalogue["run_online"])
    stats_rollup(date="2026-11-10", granularity="daily")
    first = rows(db)
    stats_rollup(date="2026-11-10", granularity="daily")
    assert rows(db) == first

    # A lead deleted after the first run: its keys disappear on the re-run
    db.execute("DELETE FROM leads WHERE course_run_id = %s", (catalogue["run_online"],))
    stats_rollup(date="2026-11-10", granularity="daily")
    keys = {(r["dimension"], r["key_id"]) for r in rows(db)}
    assert ("course", catalogue["excel"]) not in keys and ("campus", 0) not in keys
    assert [r["leads"] for r in rows(db) if r["dimension"] == "total"] == [1]


def test_empty_day_writes_a_zero_total(db, redis_client):
    result = stats_rollup(date="2026-01-01", granularity="daily")
    assert result["rollups"]["daily"]["leads"] == 0
    assert [(r["dimension"], r["leads"]) for r in rows(db)] == [("total", 0)]


def test_weekly_and_monthly_periods(db, catalogue, redis_client):
    # 2026-11-09 is a Monday; the 15th is the Sunday of that ISO week; 16th is next week.
    for day in ("2026-11-09", "2026-11-15", "2026-11-16", "2026-10-31"):
        add_lead(db, f"{day}T12:00:00Z", catalogue["run_madrid"])
    result = stats_rollup(date="2026-11-12")
    assert result["rollups"]["weekly"] == {"period_start": "2026-11-09", "leads": 2,
                                           "rows": {"total": 1, "course": 1, "campus": 1, "campaign": 1}}
    assert result["rollups"]["monthly"]["period_start"] == "2026-11-01"
    assert result["rollups"]["monthly"]["leads"] == 3
    assert result["rollups"]["daily"]["leads"] == 0


def test_default_date_is_yesterday_utc(db, redis_client):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert stats_rollup(granularity="daily")["date"] == yesterday.isoformat()


@pytest.mark.parametrize("payload, field", [
    ({"date": "2026-13-01"}, "date"),
    ({"granularity": "hourly"}, "granularity"),
])
def test_bad_payload_names_the_field(db, payload, field):
    with pytest.raises(PayloadError) as error:
        stats_rollup(**payload)
    assert field in str(error.value)


def test_through_the_stub_broker_with_progress_and_log(db, catalogue, stub_broker, stub_worker):
    add_lead(db, "2026-11-10T08:00:00Z", catalogue["run_madrid"])
    message = stats_rollup.send(date="2026-11-10", granularity="monthly")
    stub_broker.join(stats_rollup.queue_name)
    stub_worker.join()

    info = job_state.get_job(message.message_id)
    assert info.state == "completed" and info.progress == 100
    assert info.result["rollups"]["monthly"]["leads"] == 1
    assert any("monthly rollup from 2026-11-01: 1 leads" in line for line in info.log)


def test_send_rejects_a_bad_payload(stub_broker):
    with pytest.raises(PayloadError, match="granularity: Value error, must be one of daily, weekly, monthly"):
        stats_rollup.send(granularity="hourly")
    assert stub_broker.queues["stats"].qsize() == 0


def test_dashboard_read_is_an_index_lookup(db, catalogue, redis_client):
    for day in range(1, 29):
        add_lead(db, f"2026-02-{day:02d}T10:00:00Z", catalogue["run_madrid"])
        stats_rollup(date=f"2026-02-{day:02d}", granularity="daily")
    got = rollups.read_rollups(db, "daily", "campus", dt.date(2026, 2, 1), dt.date(2026, 2, 7))
    assert [r["leads"] for r in got] == [1] * 7
    db.execute("SET enable_seqscan = off")
    plan = "\n".join(r["QUERY PLAN"] for r in db.execute(
        "EXPLAIN SELECT period_start, key_id, leads, consented FROM lead_rollups WHERE granularity = 'daily'"
        " AND dimension = 'campus' AND period_start BETWEEN '2026-02-01' AND '2026-02-07'").fetchall())
    assert "lead_rollups_pkey" in plan and "Index" in plan
