"""The digest's 08:00 in Madrid across both clock changes, and its reads: index lookups on a realistic volume."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from cep_automation.actors.digest import day_to_report
from cep_automation.domain import campus_rollups, digest
from cep_automation.queues import policy

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("tick, due", [
    # Winter (CET, UTC+1): 07:00 UTC is 08:00 in Madrid
    ("2026-01-15 07:00", "2026-01-14"), ("2026-01-15 06:00", None),
    # Summer (CEST, UTC+2): 06:00 UTC is 08:00 in Madrid
    ("2026-07-15 06:00", "2026-07-14"), ("2026-07-15 07:00", None),
    # Spring change, Sunday 29 March 2026 at 01:00 UTC: that morning is already summer time
    ("2026-03-28 07:00", "2026-03-27"), ("2026-03-28 06:00", None),
    ("2026-03-29 06:00", "2026-03-28"), ("2026-03-29 07:00", None),
    ("2026-03-30 06:00", "2026-03-29"),
    # Autumn change, Sunday 25 October 2026 at 01:00 UTC: that morning is already winter time
    ("2026-10-24 06:00", "2026-10-23"), ("2026-10-24 07:00", None),
    ("2026-10-25 07:00", "2026-10-24"), ("2026-10-25 06:00", None),
    ("2026-10-26 07:00", "2026-10-25"),
    # periodiq's tick may carry seconds; the hour decides
    ("2026-01-15 07:00:59", "2026-01-14"),
])
def test_due_day_across_both_clock_changes(tick, due):
    assert digest.due_day(at(tick)) == (dt.date.fromisoformat(due) if due else None)


def test_exactly_one_of_the_two_daily_ticks_is_due_every_day_of_two_years():
    assert policy("digest.daily").cron == "0 6,7 * * *"
    day = dt.date(2026, 1, 1)
    while day < dt.date(2028, 1, 1):
        ticks = [dt.datetime.combine(day, dt.time(hour), tzinfo=UTC) for hour in (6, 7)]
        assert [digest.due_day(t) for t in ticks].count(day - dt.timedelta(days=1)) == 1, day
        assert sum(digest.due_day(t) is not None for t in ticks) == 1, day
        day += dt.timedelta(days=1)


def test_the_day_of_a_run():
    now = at("2026-03-29 00:30")  # 01:30 in Madrid (CET) on the 29th
    assert day_to_report(dt.date(2026, 3, 1), None, now) == dt.date(2026, 3, 1)  # given: as given
    assert day_to_report(None, None, now) == dt.date(2026, 3, 28)  # manual: the last day over
    # 00:30 in Madrid on the 29th is 23:30 UTC on the 28th: the 28th is not over, the 27th is reported
    assert day_to_report(None, None, at("2026-03-28 23:30")) == dt.date(2026, 3, 27)
    assert day_to_report(None, at("2026-03-29 06:00"), now) == dt.date(2026, 3, 28)  # the tick decides, not now
    assert day_to_report(None, at("2026-03-29 07:00"), now) is None


# -- Reads on a realistic volume ------------------------------------------------------------------------------

DAYS, CAMPUSES, COURSES, CAMPAIGNS = 730, 12, 60, 40  # two years of a school's figures


@pytest.fixture
def volume(db):
    """Two years of rollups, per-campus splits, campaign figures (one row per campaign and sync day) and anomalies."""
    db.execute("INSERT INTO campuses (name, advisor_email) SELECT 'Campus ' || g, 'asesor' || g || '@cep.es'"
               " FROM generate_series(1, %s) g", (CAMPUSES,))
    db.execute("INSERT INTO courses (title, offer_type) SELECT 'Curso ' || g, 'privados' FROM generate_series(1, %s) g",
               (COURSES,))
    db.execute("INSERT INTO campaigns (name, tracking_tag) SELECT 'Campaña ' || g, 'c' || g"
               " FROM generate_series(1, %s) g", (CAMPAIGNS,))
    first = dt.datetime.now(UTC).date() - dt.timedelta(days=DAYS + 1)  # the last day is over: a complete rollup
    days = "(SELECT %(first)s::date + i AS p FROM generate_series(0, %(n)s - 1) i) AS days"
    params = {"first": first, "n": DAYS, "courses": COURSES, "campaigns": CAMPAIGNS, "campuses": CAMPUSES}
    db.execute(f"INSERT INTO lead_rollups (granularity, dimension, period_start, key_id, leads, consented)"
               f" SELECT 'daily', d.name, p, k, 3, 2 FROM {days},"
               f" (VALUES ('course', %(courses)s), ('campaign', %(campaigns)s), ('campus', %(campuses)s), ('total', 1))"
               f" AS d(name, n), generate_series(1, d.n) g, LATERAL (SELECT CASE d.name WHEN 'total' THEN 0 ELSE g END"
               f" AS k) AS key", params)
    db.execute(f"INSERT INTO lead_rollups_by_campus (granularity, period_start, campus_id, dimension, key_id, leads,"
               f" consented) SELECT 'daily', p, c, d.name, k, 1, 1 FROM {days}, generate_series(1, %(campuses)s) c,"
               f" (VALUES ('course', 10), ('campaign', 8)) AS d(name, n), generate_series(1, d.n) k", params)
    db.execute(f"INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, leads,"
               f" spend, ctr, cpl) SELECT c, %(first)s, p, 10, 1000, 2, 20, 1.0, 10 FROM {days},"
               f" generate_series(1, %(campaigns)s) c", params)
    db.execute(f"INSERT INTO campaign_anomalies (campaign_id, kind, severity, message, alerted_at)"
               f" SELECT c, 'low_ctr', 'medium', 'Low CTR', p + time '06:00' + (h * interval '6 hours')"
               f" FROM {days}, generate_series(1, 10) c, generate_series(0, 3) h", params)
    db.execute("ANALYZE")
    return first + dt.timedelta(days=DAYS - 1)


def plan(db, query, params):
    """The plan's nodes, flattened: (node type, relation or index)."""
    found = []

    def walk(node):
        found.append((node["Node Type"], node.get("Index Name") or node.get("Relation Name")))
        for child in node.get("Plans", []):
            walk(child)

    walk(db.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()["QUERY PLAN"][0]["Plan"])
    return found


def test_every_read_of_the_digest_is_an_index_lookup(db, volume):
    day = volume
    bounds = (dt.datetime.combine(day, dt.time(), tzinfo=UTC), dt.datetime.combine(day + dt.timedelta(days=1),
                                                                                   dt.time(), tzinfo=UTC))
    reads = {
        "totals": (digest.TOTALS, (["total", "course", "campaign"], day)),
        "by_campus": ("SELECT campus_id, dimension, key_id, leads, consented FROM lead_rollups_by_campus"
                      " WHERE granularity = 'daily' AND period_start = %s ORDER BY campus_id, dimension, key_id",
                      (day,)),
        "campaigns": (digest.CAMPAIGN_FIGURES, (day,)),
        "anomalies": (digest.ANOMALIES, bounds),
    }
    big = {"lead_rollups", "lead_rollups_by_campus", "campaign_metrics", "campaign_anomalies"}
    for name, (query, params) in reads.items():
        nodes = plan(db, query, params)
        scanned = {relation for kind, relation in nodes if kind == "Seq Scan"}
        assert not scanned & big, f"{name}: {json.dumps(nodes)}"
        assert any("Index" in kind for kind, _ in nodes), f"{name}: {json.dumps(nodes)}"


def test_reading_a_day_costs_milliseconds_on_two_years(db, volume, capsys):
    assert digest.ensure_rollup(db, volume) is False  # its rollup is complete: nothing computed
    started = time.perf_counter()
    figures = digest.read_day(db, volume)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert figures.for_all().leads == 3 and len(figures.for_all().by_course) == COURSES
    assert len(figures.campaigns) == CAMPAIGNS and len(figures.anomalies) == 10
    assert figures.for_campus(1).leads == 10 and len(figures.for_campus(1).by_campaign) == 8
    assert len(campus_rollups.read_period(db, "daily", volume, 3)) == 18
    with capsys.disabled():
        print(f"\nread_day on {DAYS} days x {CAMPUSES} campuses: {elapsed_ms:.1f} ms")
    assert elapsed_ms < 500
