"""Spend caps: charges stored in PostgreSQL, alerts at 80% and 100% at a fake Slack, llm.ingest waiting for the
next day over a cap (the day moved by the caps' clock and the worker's, never by sleeping), `cep-automation spend`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import dramatiq.worker
import pytest

from cep_automation.errors import OverBudget
from cep_automation.runtime import spend
from cep_automation.settings import SettingsError, get_settings, load_settings
from cep_automation.testing import CLI, wait_for

COURSE = {"title": "Excel avanzado", "objectives": ["Tablas dinámicas"], "modules": ["Fórmulas"], "hours": 60,
          "modality": "telematico", "requirements": [], "offer_type": "desempleados"}
ADS = {"ads": [{"primary_text": "Curso gratuito de Excel avanzado.", "headline": "Excel avanzado gratis",
                "description": "100% subvencionado"}]}

# 15:00 in Madrid on a summer day (UTC+2): nine hours to midnight.
AFTERNOON = dt.datetime(2026, 7, 14, 15, 0, tzinfo=spend.MADRID)


class Clock:
    """The caps' clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(AFTERNOON)
    monkeypatch.setattr(spend, "clock", fake)
    return fake


@pytest.fixture
def caps(monkeypatch, sandbox, db, redis_client):
    """Set the caps (settings by name) in this process, over the sandbox's fakes."""
    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def add_upload(db, tmp_path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(tmp_path / "curso.pdf"))
    c.drawString(72, 800, "Curso de Excel avanzado: 60 horas, teleformación, para desempleados.")
    c.save()
    return db.execute("INSERT INTO uploads (filename, file_path) VALUES ('curso.pdf', %s) RETURNING id::text",
                      (str(tmp_path / "curso.pdf"),)).fetchone()["id"]


def upload_row(db, upload_id):
    return db.execute("SELECT * FROM uploads WHERE id = %s", (upload_id,)).fetchone()


def answer_in_turn(openai, *contents):
    """The fake model answers ``contents`` in order (course data, then ad copy)."""
    queue, original = list(contents), openai.handle

    def handle(request):
        if request.path.endswith("/chat/completions") and queue:
            openai.content = queue.pop(0)
        return original(request)

    openai.handle = handle


def spend_alerts(sandbox):
    return [m["text"] for m in sandbox.slack.messages if "Spend" in m["text"]]


def test_seconds_until_madrid_midnight(clock):
    assert spend.seconds_until_midnight() == 9 * 3600
    clock.now = dt.datetime(2026, 10, 24, 22, 30, tzinfo=dt.UTC)  # 00:30 in Madrid on the day the clocks go back
    assert spend.today() == dt.date(2026, 10, 25)
    assert spend.seconds_until_midnight() == 24.5 * 3600  # the day has 25 hours
    clock.now = dt.datetime(2026, 7, 14, 22, 30, tzinfo=dt.UTC)  # already the 15th in Madrid
    assert spend.today() == dt.date(2026, 7, 15) and spend.seconds_until_midnight() == 23.5 * 3600


def test_llm_caps_in_euros_alert_at_80_and_100_percent_once(caps, clock, sandbox, db):
    caps(LLM_DAILY_CAP_EUR="10", CEP_USD_EUR_RATE="0.5")
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, usd=10.0, tokens=1000)  # 5 EUR: 50%
    spend.check(kind=spend.LLM)
    assert spend_alerts(sandbox) == []
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, usd=6.0, tokens=500)  # 8 EUR: 80%
    spend.charge("anthropic", "anthropic/claude-sonnet-4-5", kind=spend.LLM, eur=0.5)  # 8.5 EUR
    spend.check(kind=spend.LLM)
    assert len(spend_alerts(sandbox)) == 1 and "at 80%" in spend_alerts(sandbox)[0]
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, usd=3.0)  # 10 EUR: the cap
    with pytest.raises(OverBudget) as over:
        spend.check(kind=spend.LLM)
    assert over.value.retry_after == 9 * 3600 and "10.00 of 10.00 EUR" in str(over.value)
    with pytest.raises(OverBudget):
        spend.check(kind=spend.LLM)
    alerts = spend_alerts(sandbox)
    assert len(alerts) == 2 and "Spend reached: LLM daily cap (EUR)" in alerts[1]
    rows = db.execute("SELECT day, kind, provider, cost_eur, cost_usd FROM spend ORDER BY id").fetchall()
    assert [float(r["cost_eur"]) for r in rows] == [5.0, 3.0, 0.5, 1.5] and rows[2]["cost_usd"] is None
    assert {r["day"] for r in rows} == {dt.date(2026, 7, 14)} and {r["kind"] for r in rows} == {"llm"}
    # Given the next day in Madrid, When the check runs, Then the cap starts again from zero
    clock.now += dt.timedelta(hours=9)
    spend.check(kind=spend.LLM)


def test_token_cap_and_a_budget_per_provider(caps, clock, sandbox):
    caps(LLM_DAILY_CAP_EUR="0", LLM_DAILY_CAP_TOKENS="1000", CEP_SPEND_BUDGETS="miami=500units,whatsapp=2")
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, tokens=999)
    spend.check(kind=spend.LLM)
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, tokens=1)
    with pytest.raises(OverBudget, match="tokens"):
        spend.check(kind=spend.LLM)
    spend.check(provider="whatsapp")  # other caps are not the LLM's
    spend.charge("miami", "folio lookup", units=499)
    spend.check(provider="miami")
    spend.charge("miami", "folio lookup", units=1)
    with pytest.raises(OverBudget, match="miami budget: 500.00 of 500.00 units"):
        spend.check(provider="miami")
    spend.charge("whatsapp", "template:lead_advisor_notice", eur=2.5)
    with pytest.raises(OverBudget, match="whatsapp budget"):
        spend.check(provider="whatsapp")
    assert len([a for a in spend_alerts(sandbox) if "reached" in a]) == 3


def test_malformed_budgets_are_named():
    with pytest.raises(SettingsError, match="CEP_SPEND_BUDGETS is invalid .*'whatsapp=lots'"):
        load_settings(_env_file=None, redis_url="redis://x", database_url="postgresql://x",
                      cep_spend_budgets="whatsapp=lots")


def test_ingest_over_the_cap_waits_until_the_next_day(caps, clock, sandbox, db, tmp_path, monkeypatch, stub_broker,
                                                      stub_worker):
    # Given today's LLM tokens at the cap, and a PDF to ingest
    caps(LLM_DAILY_CAP_TOKENS="1000")
    spend.charge("openai", "openai/gpt-4", kind=spend.LLM, tokens=1000)
    answer_in_turn(sandbox.openai, COURSE, ADS)
    upload_id = add_upload(db, tmp_path)
    delays = []
    enqueue = stub_broker.enqueue
    monkeypatch.setattr(stub_broker, "enqueue",
                        lambda m, *, delay=None: delays.append(delay) or enqueue(m, delay=delay))
    # When llm.ingest runs: it is postponed to Madrid's midnight, not failed, and nothing was asked of the model
    from cep_automation.actors import llm_ingest

    message = llm_ingest.send(upload_id=upload_id, model="gpt-4")
    wait_for(lambda: len(delays) == 2, timeout=10)
    assert delays == [None, 9 * 3600 * 1000]  # sent, then retried at midnight
    row = upload_row(db, upload_id)
    assert row["status"] == "processing" and row["error"].startswith("waiting: LLM daily cap (tokens)")
    assert sandbox.openai.chat_requests == [] and any("Spend reached" in a for a in spend_alerts(sandbox))
    # Then, the next day (the caps' clock and the worker's moved on), it runs and completes
    clock.now += dt.timedelta(hours=9, seconds=1)
    real_millis = dramatiq.worker.current_millis
    monkeypatch.setattr(dramatiq.worker, "current_millis", lambda: real_millis() + (9 * 3600 + 1) * 1000)
    stub_broker.join("llm", timeout=30_000)
    stub_worker.join()
    row = upload_row(db, upload_id)
    assert row["status"] == "completed" and row["error"] is None
    assert len(sandbox.openai.chat_requests) == 2
    assert db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 0
    days = db.execute("SELECT day, count(*) AS n, min(message_id) AS m FROM spend GROUP BY day ORDER BY day").fetchall()
    assert [(r["day"], r["n"]) for r in days] == [(dt.date(2026, 7, 14), 1), (dt.date(2026, 7, 15), 2)]
    assert days[1]["m"] == message.message_id


def test_spend_command(db, process_env):
    today = dt.datetime.now(spend.MADRID).date()
    for day, provider, item, tokens, eur in [
            (today, "openai", "openai/gpt-4", 1200, 0.04), (today, "openai", "openai/gpt-4", 800, 0.02),
            (today - dt.timedelta(days=3), "anthropic", "anthropic/claude-sonnet-4-5", 5000, 0.3),
            (today - dt.timedelta(days=40), "openai", "openai/gpt-4", 99999, 9.0)]:
        db.execute("INSERT INTO spend (day, kind, provider, item, tokens, cost_eur, cost_usd) VALUES"
                   " (%s, 'llm', %s, %s, %s, %s, %s)", (day, provider, item, tokens, eur, eur / 0.86))
    db.execute("INSERT INTO spend (day, kind, provider, item, units) VALUES (%s, 'miami', 'miami', 'folio', 3)",
               (today,))
    env = process_env(LLM_DAILY_CAP_EUR="1", CEP_SPEND_BUDGETS="miami=500units")
    done = subprocess.run([*CLI, "spend", "--json"], env=env, capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(done.stdout)
    assert data["day"] == today.isoformat() and data["timezone"] == "Europe/Madrid"
    gpt = next(r for r in data["today"] if r["item"] == "openai/gpt-4")
    assert (gpt["calls"], gpt["tokens"], gpt["cost_eur"]) == (2, 2000, 0.06)
    assert {r["provider"] for r in data["last_days"]} == {"openai", "anthropic", "miami"}
    assert next(r for r in data["last_days"] if r["provider"] == "openai")["tokens"] == 2000  # not 40 days ago
    by_cap = {c["cap"]: c for c in data["caps"]}
    assert by_cap["LLM daily cap (EUR)"]["share"] == 0.06 and by_cap["miami budget"]["used"] == 3
    table = subprocess.run([*CLI, "spend"], env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Today (" in table and "Last 30 days" in table and "openai/gpt-4" in table
    assert "LLM daily cap (EUR): 0.06 of 1.00 (6%)" in table
