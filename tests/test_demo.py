"""Demo data: every offer type, leads over the last 60 days, deterministic and idempotent."""

from __future__ import annotations

import datetime as dt

from cep_automation.dev import demo

NOW = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)


def test_catalogue_covers_every_offer_type_and_telematico_runs(db):
    counts = demo.load_demo(db, leads=50, now=NOW)

    assert counts == {"campuses": 3, "courses": len(demo.COURSES), "course_runs": counts["course_runs"],
                      "campaigns": len(demo.CAMPAIGNS), "leads": 50}
    offer_types = {r["offer_type"] for r in db.execute("SELECT DISTINCT offer_type FROM courses")}
    assert offer_types == {"telematico", "ocupados", "desempleados", "privados"}
    runs = db.execute("SELECT c.offer_type, r.campus_id FROM course_runs r JOIN courses c ON c.id = r.course_id"
                      ).fetchall()
    assert len(runs) == counts["course_runs"]
    assert {r["campus_id"] is None for r in runs if r["offer_type"] == "telematico"} == {True}
    assert all(r["campus_id"] is not None for r in runs if r["offer_type"] != "telematico")
    campuses = db.execute("SELECT name, advisor_phone FROM campuses ORDER BY name").fetchall()
    assert [c["name"] for c in campuses] == ["Madrid", "Málaga", "Sevilla"]
    assert all(c["advisor_phone"].startswith("+346") for c in campuses)
    campaigns = db.execute("SELECT status, budget, meta_campaign_id FROM campaigns").fetchall()
    assert {c["status"] for c in campaigns} == {"active", "paused", "ended"}
    assert all(c["budget"] > 0 for c in campaigns)


def test_leads_are_spread_over_the_last_60_days(db):
    demo.load_demo(db, leads=300, now=NOW)

    leads = db.execute("SELECT * FROM leads").fetchall()
    assert len(leads) == 300
    first = min(lead["created_at"] for lead in leads)
    last = max(lead["created_at"] for lead in leads)
    assert NOW - dt.timedelta(days=demo.DAYS) <= first < NOW - dt.timedelta(days=50)
    assert NOW - dt.timedelta(days=2) < last <= NOW
    assert len({lead["created_at"].date() for lead in leads}) > 45
    without_consent = [lead for lead in leads if lead["consent_at"] is None]
    assert 0 < len(without_consent) < 100
    assert all(lead["consent_ip"] is None and lead["consent_text"] is None for lead in without_consent)
    assert 0 < sum(lead["campaign_id"] is not None for lead in leads) < 300
    assert sum(lead["course_run_id"] is None for lead in leads) < 50
    assert all(lead["email"].endswith("@example.com") and lead["external_id"].startswith("demo-") for lead in leads)
    assert {lead["source"] for lead in leads} == {"web", "meta"}


def test_second_load_adds_nothing(db):
    demo.load_demo(db, leads=120, now=NOW)
    tables = ("campuses", "courses", "course_runs", "campaigns", "leads")
    before = {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables}

    # A day later, same seed: nothing new, whatever "now" is
    counts = demo.load_demo(db, leads=120, now=NOW + dt.timedelta(days=1))

    assert counts == dict.fromkeys(tables, 0)
    assert {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables} == before


def test_more_leads_later_only_adds_the_new_ones(db):
    demo.load_demo(db, leads=10, now=NOW)
    assert demo.load_demo(db, leads=25, now=NOW)["leads"] == 15


def test_same_seed_same_data(db):
    demo.load_demo(db, leads=40, seed=7, now=NOW)
    first = db.execute("SELECT external_id, name, email, created_at, consent_at FROM leads ORDER BY external_id"
                       ).fetchall()
    db.execute("TRUNCATE leads, course_runs, courses, campuses, campaigns RESTART IDENTITY CASCADE")
    demo.load_demo(db, leads=40, seed=7, now=NOW)
    again = db.execute("SELECT external_id, name, email, created_at, consent_at FROM leads ORDER BY external_id"
                       ).fetchall()
    assert again == first
