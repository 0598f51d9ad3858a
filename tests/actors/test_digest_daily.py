"""digest.daily against the fake Mandrill (a real local HTTP server), on real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cep_automation.actors import digest_daily, stats_rollup
from cep_automation.domain import digest
from cep_automation.errors import PayloadError
from cep_automation.records import job_state

DAY = dt.date(2026, 3, 10)
MARKETING = "marketing@cepformacion.es"


@pytest.fixture
def marketing(sandbox, monkeypatch):
    """The sandbox, with CEP_MARKETING_EMAIL set."""
    from cep_automation.settings import get_settings

    monkeypatch.setenv("CEP_MARKETING_EMAIL", MARKETING)
    get_settings.cache_clear()
    yield sandbox
    get_settings.cache_clear()


def insert(db, query, *params):
    return db.execute(query + " RETURNING id", params).fetchone()["id"]


@pytest.fixture
def seeded(db):
    """Madrid and Sevilla have advisors, Bilbao none; Python runs in Madrid and Sevilla, Excel online.
    On DAY: Madrid 3 leads (2 Otoño, 1 none; 2 consented), Sevilla 1 (Otoño), online 1 (Primavera); others on
    the days around. Campaign figures and anomalies of DAY, and of the days around."""
    madrid = insert(db, "INSERT INTO campuses (name, advisor_email) VALUES ('Madrid', 'asesor.madrid@cep.es')")
    sevilla = insert(db, "INSERT INTO campuses (name, advisor_email) VALUES ('Sevilla', ' asesora.sevilla@cep.es ')")
    insert(db, "INSERT INTO campuses (name) VALUES ('Bilbao')")
    python = insert(db, "INSERT INTO courses (title, offer_type) VALUES ('Python', 'privados')")
    excel = insert(db, "INSERT INTO courses (title, offer_type) VALUES ('Excel', 'telematico')")
    run = "INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s)"
    runs = {"madrid": insert(db, run, python, madrid), "sevilla": insert(db, run, python, sevilla),
            "online": insert(db, run, excel, None)}
    camp = "INSERT INTO campaigns (name, tracking_tag, budget) VALUES (%s, %s, 1000)"
    otono, primavera = insert(db, camp, "Otoño", "otono"), insert(db, camp, "Primavera", "primavera")
    lead = ("INSERT INTO leads (name, email, phone, course_run_id, campaign_id, consent_at, created_at)"
            " VALUES ('Ana Secreta', 'ana.secreta@example.com', '+34600111222', %s, %s,"
            " CASE WHEN %s THEN now() END, %s)")
    for run_id, campaign, consent, at in [
            (runs["madrid"], otono, True, "2026-03-10T00:00:00Z"),
            (runs["madrid"], otono, True, "2026-03-10T12:00:00Z"),
            (runs["madrid"], None, False, "2026-03-10T23:59:59Z"),
            (runs["sevilla"], otono, True, "2026-03-10T09:00:00Z"),
            (runs["online"], primavera, True, "2026-03-10T10:00:00Z"),
            (runs["madrid"], otono, True, "2026-03-09T23:59:59Z"),
            (runs["sevilla"], primavera, True, "2026-03-11T00:00:00Z")]:
        db.execute(lead, (run_id, campaign, consent, at))
    metric = ("INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, leads, spend,"
              " ctr, cpl) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
    db.execute(metric, (otono, "2026-03-01", "2026-03-10", 300, 10000, 12, "420.00", 3.0, 35.0))
    db.execute(metric, (otono, "2026-03-10", "2026-03-10", 30, 1000, 3, "42.00", 3.0, 14.0))  # a manual one-day sync
    db.execute(metric, (otono, "2026-03-01", "2026-03-09", 270, 9000, 9, "378.00", 3.0, 42.0))
    db.execute(metric, (primavera, "2026-03-01", "2026-03-10", 20, 20000, 0, "950.00", 0.1, None))
    anomaly = ("INSERT INTO campaign_anomalies (campaign_id, kind, severity, message, alerted_at)"
               " VALUES (%s, %s, 'medium', %s, %s)")
    db.execute(anomaly, (primavera, "low_ctr", "Low CTR in campaign Primavera: 0.12%", "2026-03-10T06:00Z"))
    db.execute(anomaly, (primavera, "low_ctr", "Low CTR in campaign Primavera: 0.10%", "2026-03-10T18:00Z"))
    db.execute(anomaly, (primavera, "budget_90", "Budget 90% spent in campaign Primavera", "2026-03-11T00:00Z"))
    db.execute(anomaly, (otono, "low_ctr", "Low CTR in campaign Otoño: 0.40%", "2026-03-09T18:00Z"))
    return {"madrid": madrid, "sevilla": sevilla, "otono": otono, "primavera": primavera}


def sent_to(fake):
    """Recipient → merge variables, for each email the fake accepted."""
    return {m["message"]["to"][0]["email"]: {v["name"]: v["content"] for v in m["message"]["global_merge_vars"]}
            for m in fake.sent}


def test_content_for_a_seeded_day(db, marketing, seeded, redis_client):
    stats_rollup(date=DAY.isoformat(), granularity="daily")

    result = digest_daily(day=DAY.isoformat())

    assert result["rollup_computed"] is False and result["recipients"] == 3
    assert {m["template_name"] for m in marketing.mandrill.sent} == {"daily-digest"}
    emails = sent_to(marketing.mandrill)
    assert set(emails) == {"asesor.madrid@cep.es", "asesora.sevilla@cep.es", MARKETING}  # Bilbao has no advisor
    assert emails[MARKETING] == {
        "DIGEST_DATE": "2026-03-10", "SCOPE": "Todos los centros", "LEADS_TOTAL": "5", "LEADS_CONSENTED": "4",
        "LEADS_BY_COURSE": "Python: 4\nExcel: 1", "LEADS_BY_CAMPAIGN": "Otoño: 3\nPrimavera: 1\nSin campaña: 1",
        "CAMPAIGNS": "Otoño: CTR 3.00%, CPL 35.00 €, gasto 420.00 € (2026-03-01 – 2026-03-10)\n"
                     "Primavera: CTR 0.10%, CPL —, gasto 950.00 € (2026-03-01 – 2026-03-10)",
        "ANOMALIES": "MEDIUM: Low CTR in campaign Primavera: 0.10%"}
    assert emails["asesor.madrid@cep.es"] == {
        "DIGEST_DATE": "2026-03-10", "SCOPE": "Madrid", "LEADS_TOTAL": "3", "LEADS_CONSENTED": "2",
        "LEADS_BY_COURSE": "Python: 3", "LEADS_BY_CAMPAIGN": "Otoño: 2\nSin campaña: 1",
        "CAMPAIGNS": "Otoño: CTR 3.00%, CPL 35.00 €, gasto 420.00 € (2026-03-01 – 2026-03-10)", "ANOMALIES": ""}
    sevilla = emails["asesora.sevilla@cep.es"]
    assert (sevilla["SCOPE"], sevilla["LEADS_TOTAL"], sevilla["LEADS_BY_CAMPAIGN"]) == ("Sevilla", "1", "Otoño: 1")
    # Aggregates only: no lead's name, email or phone in anything sent
    body = json.dumps(marketing.mandrill.sent)
    assert "Secreta" not in body and "example.com" not in body and "600111222" not in body
    assert {m["message"]["metadata"]["recipient"] for m in marketing.mandrill.sent} == {
        f"campus:{seeded['madrid']}", f"campus:{seeded['sevilla']}", "marketing"}


def test_a_missing_rollup_is_computed_first(db, marketing, seeded, redis_client):
    # Given stats.rollup has not run for DAY, and has run for the day before only while DAY was not over
    result = digest_daily(day=DAY.isoformat())
    assert result["rollup_computed"] is True
    assert sent_to(marketing.mandrill)[MARKETING]["LEADS_TOTAL"] == "5"
    assert digest.ensure_rollup(db, DAY) is False  # now complete: not computed again


def test_a_rollup_made_before_the_day_was_over_is_recomputed(db, seeded, redis_client):
    stats_rollup(date=DAY.isoformat(), granularity="daily")
    db.execute("UPDATE lead_rollups SET updated_at = '2026-03-10T20:00Z' WHERE period_start = %s", (DAY,))
    assert digest.ensure_rollup(db, DAY) is True


def test_one_email_per_recipient_and_a_second_run_sends_nothing(db, marketing, seeded, redis_client):
    digest_daily(day=DAY.isoformat())
    again = digest_daily(day=DAY.isoformat())
    assert len(marketing.mandrill.sent) == 3
    assert {s["detail"] for s in again["steps"].values()} == {"done in an earlier attempt"}


def test_without_mandrill_each_recipient_is_skipped(db, seeded, redis_client):
    result = digest_daily(day=DAY.isoformat())  # no sandbox: MAILCHIMP_TRANSACTIONAL_KEY is not set
    assert {s["status"] for s in result["steps"].values()} == {"skipped"} and len(result["steps"]) == 2


@pytest.mark.parametrize("name, status", [("GeneralError", 500), ("RequestLimitExceeded", 429)])
def test_a_transient_mandrill_failure_retries_only_that_recipient(db, marketing, seeded, stub_broker, stub_worker,
                                                                 name, status):
    # Given Mandrill answers one request (whichever recipient's comes first) with a transient error
    marketing.mandrill.fail_with(name, status=status, retry_after=0 if status == 429 else None)

    # When the digest runs through the broker
    message = digest_daily.send(day=DAY.isoformat())
    stub_broker.join("stats", fail_fast=False)
    stub_worker.join()

    # Then the retry sent only the failed recipient's email: three emails, four requests, two attempts
    info = job_state.get_job(message.message_id)
    assert info.state == "completed" and info.attempt == 2
    assert len(marketing.mandrill.sent) == 3 and len(marketing.mandrill.requests) == 4
    assert len(sent_to(marketing.mandrill)) == 3


def test_the_tick_at_08_00_in_madrid_sends_and_the_other_tick_does_not(db, marketing, seeded, stub_broker,
                                                                       stub_worker, monkeypatch):
    # periodiq's ticks are fresh (a stale tick is skipped), so the test moves 08:00 to the hour of this tick
    tick = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    madrid_hour = tick.astimezone(digest.MADRID).hour

    # A tick whose hour in Madrid is not the sending hour: nothing
    other_tick = tick - dt.timedelta(minutes=2)
    monkeypatch.setattr(digest, "SEND_HOUR", (other_tick.astimezone(digest.MADRID).hour + 1) % 24)
    other = digest_daily.send_with_options(scheduled_at=other_tick.isoformat())
    stub_broker.join("stats")
    stub_worker.join()
    assert "skipped" in job_state.get_job(other.message_id).result and marketing.mandrill.sent == []

    # The sending hour's tick, sent by two schedulers: one run, yesterday in Madrid, to every recipient
    monkeypatch.setattr(digest, "SEND_HOUR", madrid_hour)
    first = digest_daily.send_with_options(scheduled_at=tick.isoformat())
    duplicate = digest_daily.send_with_options(scheduled_at=tick.isoformat())
    stub_broker.join("stats")
    stub_worker.join()
    result = job_state.get_job(first.message_id).result
    assert duplicate.message_id == first.message_id
    assert result["day"] == (tick.astimezone(digest.MADRID).date() - dt.timedelta(days=1)).isoformat()
    assert len(marketing.mandrill.sent) == 3

    # Another tick of the same day (a scheduler's clock a minute off): every email was sent already
    nearby = tick + dt.timedelta(minutes=1 if tick.minute == 0 else -1)  # in the same hour
    later = digest_daily.send_with_options(scheduled_at=nearby.isoformat())
    stub_broker.join("stats")
    stub_worker.join()
    assert len(marketing.mandrill.sent) == 3
    assert {s["detail"] for s in job_state.get_job(later.message_id).result["steps"].values()} == {
        "done in an earlier attempt"}


def test_a_day_not_over_is_refused(db):
    with pytest.raises(PayloadError) as error:
        digest_daily(day=dt.datetime.now(dt.UTC).date().isoformat())
    assert "day" in str(error.value)
