"""Demo figures for the statistics and history pages: the leads' daily rollups, a campaign's daily figures,
a few anomalies alerted, and a week of queue history with a busy morning, a slow afternoon and a bad hour.

Like the rest of the demo, every number comes from a seeded ``random.Random`` and loading again writes the
same rows (upserts; the history adds the minutes that passed since the last load).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import psycopg

from cep_automation.domain import rollups

HISTORY_DAYS = 7
# queue → (jobs completed per minute at the day's peak, typical wait in ms)
QUEUE_LOAD = {"leads": (6.0, 400), "campaigns": (0.4, 1500), "stats": (2.5, 900), "llm": (0.15, 8000),
              "backup": (0.01, 200)}


def load_figures(conn: psycopg.Connection[Any], seed: int, days: int, now: dt.datetime) -> dict[str, int]:
    """Rollups for the last ``days`` days, campaign figures, anomalies and the queue history; rows written."""
    rng = random.Random(seed)
    for back in range(days + 1):  # a lead planned "later today" moved back a day can be ``days`` days old
        rollups.rollup(conn, now.date() - dt.timedelta(days=back), "daily")
    metrics = _campaign_metrics(conn, rng, days, now.date())
    return {"campaign_metrics": metrics, "campaign_anomalies": _anomalies(conn, now),
            "queue_history": _history(conn, random.Random(seed + 1), now)}


def _campaign_metrics(conn: psycopg.Connection[Any], rng: random.Random, days: int, today: dt.date) -> int:
    campaigns = conn.execute("SELECT id, name, status, budget FROM campaigns WHERE tracking_tag LIKE 'demo-%'"
                             " ORDER BY id").fetchall()
    rows = []
    for index, campaign in enumerate(campaigns):
        campaign_id = campaign["id"] if isinstance(campaign, dict) else campaign[0]
        ctr = (2.4, 1.6, 0.35, 3.1)[index % 4]  # the third one's CTR is low: an anomaly
        for back in range(days):
            day = today - dt.timedelta(days=back)
            impressions = int(rng.uniform(900, 2600) * (1 + 0.3 * math.sin(back / 4)))
            clicks = int(impressions * ctr / 100 * rng.uniform(0.7, 1.3))
            leads = rng.randrange(0, 6)
            spend = round(impressions / 1000 * rng.uniform(4, 9), 2)
            rows.append((campaign_id, day, day, clicks, impressions, leads, spend,
                         round(100 * clicks / impressions, 4) if impressions else None,
                         round(spend / leads, 2) if leads else None))
    conn.cursor().executemany(
        "INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, leads, spend, ctr,"
        " cpl) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (campaign_id, period_start, period_end)"
        " DO NOTHING", rows)
    return len(rows)


def _anomalies(conn: psycopg.Connection[Any], now: dt.datetime) -> int:
    """The low CTR of the third campaign, alerted every few days, and a budget nearly spent (once each)."""
    found = conn.execute("SELECT id, name FROM campaigns WHERE tracking_tag IN ('demo-ocupados-prl',"
                         " 'demo-sanidad-otono') ORDER BY tracking_tag").fetchall()
    if conn.execute("SELECT 1 FROM campaign_anomalies LIMIT 1").fetchone() or len(found) < 2:
        return 0
    (prl_id, prl), (health_id, health) = ((r["id"], r["name"]) if isinstance(r, dict) else r for r in found)
    rows = [(prl_id, "low_ctr", "medium", f"Low CTR in campaign {prl}: 0.35% (below 0.5%)",
             now - dt.timedelta(days=back, hours=5)) for back in range(1, 40, 6)]
    rows.append((health_id, "budget_90", "medium", f"Budget 90% spent in campaign {health}: 1380.00 of 1500",
                 now - dt.timedelta(days=2, hours=3)))
    conn.cursor().executemany("INSERT INTO campaign_anomalies (campaign_id, kind, severity, message, alerted_at)"
                              " VALUES (%s, %s, %s, %s, %s)", rows)
    return len(rows)


def _history(conn: psycopg.Connection[Any], rng: random.Random, now: dt.datetime) -> int:
    """One row per queue and minute over the last week: a daily curve, noise, and one bad hour yesterday."""
    end = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    bad = (end - dt.timedelta(days=1)).replace(minute=0)
    rows = []
    for minute in range(HISTORY_DAYS * 24 * 60):
        at = end - dt.timedelta(minutes=minute + 1)
        day_curve = max(0.05, math.sin(math.pi * ((at.hour + at.minute / 60) - 5) / 16))  # busy 06-21 UTC
        incident = bad <= at < bad + dt.timedelta(hours=1)
        for queue, (peak, wait) in QUEUE_LOAD.items():
            completed = _poisson(rng, peak * day_curve)
            failed = _poisson(rng, (2.0 if incident and queue == "leads" else 0.01) * completed)
            dead = 1 if failed and rng.random() < (0.3 if incident else 0.05) else 0
            p50 = int(wait * rng.uniform(0.6, 1.4) * (8 if incident and queue == "leads" else 1))
            waiting = _poisson(rng, peak * day_curve * (30 if incident and queue == "leads" else 0.5))
            rows.append((at, queue, waiting, rng.randrange(3), dead, completed, completed + failed, failed, dead,
                         completed, p50 if completed else None, int(p50 * rng.uniform(2, 4)) if completed else None))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO queue_history (resolution, period_start, queue, waiting, delayed, dead, completed, attempts,"
            " failed, dead_lettered, waits, wait_p50_ms, wait_p95_ms) VALUES ('minute', %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s) ON CONFLICT (resolution, period_start, queue) DO NOTHING", rows)
    return len(rows)


def _poisson(rng: random.Random, mean: float) -> int:
    """A small Poisson draw (Knuth's method; the means here are a few events a minute)."""
    limit, k, product = math.exp(-min(mean, 30)), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
