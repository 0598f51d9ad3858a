from __future__ import annotations

import datetime as dt

import pytest

from cep_automation.sequences.definition import configured
from cep_automation.settings import get_settings


@pytest.fixture
def always_open(monkeypatch):
    """Marketing hours open all day: these tests run at any hour; the hours themselves are tested apart."""
    monkeypatch.setenv("CEP_MARKETING_HOURS", "00:00-24:00")
    get_settings.cache_clear()
    configured.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    configured.cache_clear()


@pytest.fixture
def make_lead(db):
    """A lead who asked about a course run (starting in ``starts_in`` days, or undated) at a campus."""

    def make(*, consent=True, email="ana@example.com", phone="+34600123456", starts_in=None, offer="desempleados"):
        campus = db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                            " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id").fetchone()["id"]
        course = db.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', %s) RETURNING id",
                            (offer,)).fetchone()["id"]
        starts_on = dt.date.today() + dt.timedelta(days=starts_in) if starts_in is not None else None
        run = db.execute("INSERT INTO course_runs (course_id, campus_id, starts_on) VALUES (%s, %s, %s) RETURNING id",
                         (course, campus, starts_on)).fetchone()["id"]
        return db.execute(
            "INSERT INTO leads (name, email, phone, course_run_id, consent_at) VALUES ('Ana García', %s, %s, %s,"
            " CASE WHEN %s THEN now() END) RETURNING id::text", (email, phone, run, consent)).fetchone()["id"]

    return make
