"""campaign.sync against fake GA4 and Meta: figures stored, anomalies alerted, errors isolated, concurrency."""

from __future__ import annotations

import datetime as dt

import pytest

from cep_automation.actors import campaign_sync
from cep_automation.actors.campaigns import CONCURRENCY
from cep_automation.records import job_state

SINCE, UNTIL = "2026-03-01", "2026-03-31"


def add_campaign(db, sandbox, n, *, impressions=20000, clicks=400, spend="150.00", budget=1000, leads=5):
    row = db.execute("INSERT INTO campaigns (name, tracking_tag, meta_campaign_id, budget) VALUES (%s, %s, %s, %s)"
                     " RETURNING id", (f"Campaña {n}", f"tag-{n}", f"2384{n:04d}", budget)).fetchone()
    sandbox.meta.set_insights(f"2384{n:04d}", [{"impressions": impressions, "clicks": clicks, "spend": spend,
                                               "actions": [{"action_type": "lead", "value": leads}]}])
    sandbox.ga4.add_row(f"tag-{n}", sessions=clicks + 10, key_events=leads, date="20260310")
    return row["id"]


def metrics(db, campaign_id):
    return db.execute("SELECT * FROM campaign_metrics WHERE campaign_id = %s", (campaign_id,)).fetchone()


def test_one_campaign_figures(db, sandbox, redis_client):
    cid = add_campaign(db, sandbox, 1)
    db.execute("INSERT INTO leads (name, campaign_id, created_at) VALUES ('A', %s, '2026-03-05T10:00:00Z'),"
               " ('B', %s, '2026-03-06T10:00:00Z')", (cid, cid))
    result = campaign_sync(campaign_id=cid, since=SINCE, until=UNTIL)
    assert result["synced"] == 1 and result["steps"][f"campaign:{cid}"]["status"] == "success"
    row = metrics(db, cid)
    assert (row["impressions"], row["clicks"], row["leads"]) == (20000, 400, 2)  # our own leads are the truth
    assert float(row["spend"]) == 150.0 and float(row["ctr"]) == 2.0 and float(row["cpl"]) == 75.0
    assert (row["period_start"], row["period_end"]) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


def test_anomalies_are_alerted(db, sandbox, redis_client):
    low_ctr = add_campaign(db, sandbox, 2, impressions=100000, clicks=100)
    spent = add_campaign(db, sandbox, 3, spend="1000.00", budget=1000)
    result = campaign_sync(since=SINCE, until=UNTIL)
    assert any("Low CTR in campaign Campaña 2" in a for a in result["alerts"])
    assert any("Budget spent in campaign Campaña 3" in a for a in result["alerts"])
    texts = [m["text"] for m in sandbox.slack.messages]
    assert any("Low CTR" in t for t in texts) and any("Budget spent" in t for t in texts)
    assert metrics(db, low_ctr) and metrics(db, spent)
    # Noted for the daily digest, one row per alert sent
    noted = db.execute("SELECT campaign_id, kind, severity FROM campaign_anomalies ORDER BY id").fetchall()
    assert {(r["campaign_id"], r["kind"], r["severity"]) for r in noted} == {
        (low_ctr, "low_ctr", "medium"), (spent, "budget_spent", "high")}


def test_one_failing_campaign_does_not_stop_the_others(db, sandbox, stub_broker, stub_worker):
    ids = [add_campaign(db, sandbox, n) for n in range(10, 15)]
    sandbox.meta.fail_with_code(100, times=1)  # one campaign's insights call fails permanently
    message = campaign_sync.send(since=SINCE, until=UNTIL)
    stub_broker.join("campaigns", fail_fast=False)
    stub_worker.join()
    stored = [cid for cid in ids if metrics(db, cid)]
    assert len(stored) == 4
    letter = db.execute("SELECT error_message FROM dead_letters WHERE message_id = %s",
                        (message.message_id,)).fetchone()
    assert "1 step(s) failed" in letter["error_message"]


def test_transient_failure_retries_only_that_campaign(db, sandbox, stub_broker, stub_worker):
    ids = [add_campaign(db, sandbox, n) for n in range(20, 24)]
    sandbox.ga4.fail_with_status(503, retry_after=0)  # one GA4 call fails; Retry-After 0 keeps the test fast
    message = campaign_sync.send(since=SINCE, until=UNTIL)
    stub_broker.join("campaigns")
    stub_worker.join()
    info = job_state.get_job(message.message_id)
    assert info.state == "completed" and info.attempt == 2
    assert all(metrics(db, cid) for cid in ids)
    assert len([r for r in sandbox.ga4.requests if "runReport" in r.path]) == len(ids) + 1


def test_hundred_campaigns_are_fetched_concurrently(db, sandbox, redis_client):
    for n in range(100):
        add_campaign(db, sandbox, 100 + n)
    sandbox.meta.latency_s = sandbox.ga4.latency_s = 0.05
    result = campaign_sync(since=SINCE, until=UNTIL)
    assert result["synced"] == 100
    # Requests overlapped, but never beyond the bound that keeps us inside the APIs' concurrency limits
    assert 2 <= sandbox.ga4.max_in_flight <= CONCURRENCY
    assert 2 <= sandbox.meta.max_in_flight <= CONCURRENCY


def test_unknown_campaign_is_permanent(db, sandbox, stub_broker):
    from cep_automation.errors import PermanentError

    with pytest.raises(PermanentError, match="campaign 999 not found"):
        campaign_sync(campaign_id=999)


def test_no_sources_configured_skips_with_reasons(db, redis_client):
    db.execute("INSERT INTO campaigns (name, tracking_tag) VALUES ('X', 'x')")
    result = campaign_sync()
    assert result["synced"] == 0
    (outcome,) = result["steps"].values()
    assert outcome["status"] == "skipped" and "GA4_PROPERTY_ID" in outcome["detail"]


def test_lead_count_is_an_index_range_scan(db):
    """count_leads reads leads_campaign_created_idx (migration 0003), not the whole leads table, in the plan
    PostgreSQL makes for the values (custom) and in the one it may reuse once psycopg prepares the query
    (generic)."""
    from cep_automation.domain import campaigns

    db.execute("INSERT INTO campaigns (name, tracking_tag) SELECT 'Campaña ' || g, 'tag-' || g"
               " FROM generate_series(1, 20) AS g")
    db.execute("INSERT INTO leads (name, campaign_id, created_at) SELECT 'Lead ' || g, 1 + g % 20,"
               " timestamptz '2026-01-01' + (g % 365) * interval '1 day' FROM generate_series(1, 40000) AS g")
    db.execute("ANALYZE leads")
    year = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert sum(campaigns.count_leads(db, cid, *year) for cid in range(1, 21)) == 40000
    in_march = sum(1 for g in range(1, 40001) if 1 + g % 20 == 7 and 59 <= g % 365 <= 89)  # days 59-89 of 2026
    assert campaigns.count_leads(db, 7, dt.date(2026, 3, 1), dt.date(2026, 3, 31)) == in_march

    params = campaigns.count_leads_params(7, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    custom = "\n".join(r["QUERY PLAN"] for r in db.execute("EXPLAIN " + campaigns.COUNT_LEADS, params).fetchall())
    numbered = campaigns.COUNT_LEADS
    for n in (1, 2, 3):
        numbered = numbered.replace("%s", f"${n}", 1)
    db.execute(f"PREPARE count_leads_generic (bigint, date, date) AS {numbered}")
    db.execute("SET plan_cache_mode = force_generic_plan")
    generic = "\n".join(r["QUERY PLAN"] for r in db.execute(
        "EXPLAIN EXECUTE count_leads_generic (7, '2026-03-01', '2026-04-01')").fetchall())
    for plan in (custom, generic):
        assert "leads_campaign_created_idx" in plan and "Seq Scan" not in plan, plan
