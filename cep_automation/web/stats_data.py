"""What the marketing team's statistics pages read: the rollup tables, by index ranges only.

Leads per day come from ``lead_rollups`` (daily rows; a range of its primary key per dimension), campaign
figures from ``campaign_metrics`` (a range of ``campaign_metrics_period_end_idx``: for each campaign and day,
the shortest period stored that ends that day — a day's own figures when ``campaign.sync`` ran for that
day), and the anomalies ``campaign.sync`` alerted from ``campaign_anomalies`` (a range of its
``alerted_at`` index). Names come from the small catalogue tables, by primary key.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import psycopg

from cep_automation.domain.rollups import read_rollups

# Dimension → (catalogue table, its name column, the name of key 0).
DIMENSIONS = {"campus": ("campuses", "name", "Telemático"), "course": ("courses", "title", "Sin curso"),
              "campaign": ("campaigns", "name", "Sin campaña")}

CAMPAIGN_FIGURES = """
SELECT DISTINCT ON (m.campaign_id, m.period_end) m.campaign_id, c.name, m.period_start, m.period_end, m.clicks,
       m.impressions, m.leads, m.spend, m.ctr, m.cpl
FROM campaign_metrics m JOIN campaigns c ON c.id = m.campaign_id
WHERE m.period_end BETWEEN %s AND %s
ORDER BY m.campaign_id, m.period_end, m.period_start DESC
"""

ANOMALIES = """
SELECT a.alerted_at, a.kind, a.severity, c.name AS campaign
FROM campaign_anomalies a JOIN campaigns c ON c.id = a.campaign_id
WHERE a.alerted_at >= %s AND a.alerted_at < %s ORDER BY a.alerted_at DESC LIMIT %s
"""


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def names(conn: psycopg.Connection[Any], dimension: str, keys: set[int]) -> dict[int, str]:
    """Key → name in ``dimension`` (key 0 is "none": telemático, no course, no campaign)."""
    table, column, none = DIMENSIONS[dimension]
    rows = conn.execute(f"SELECT id, {column} AS name FROM {table} WHERE id = ANY(%s)",  # noqa: S608 (names above)
                        (sorted(keys - {0}),))
    return {0: none, **{row["id"]: row["name"] for row in rows}}


def leads_by(conn: psycopg.Connection[Any], dimension: str, first: dt.date,
             last: dt.date) -> dict[str, dict[dt.date, tuple[int, int]]]:
    """Name → day → (leads, consented) for one dimension ("total" gives one series named "Total")."""
    rows = read_rollups(conn, "daily", dimension, first, last)
    found: dict[str, dict[dt.date, tuple[int, int]]] = defaultdict(dict)
    labels = names(conn, dimension, {r["key_id"] for r in rows}) if dimension != "total" else {0: "Total"}
    for row in rows:
        name = labels.get(row["key_id"], f"#{row['key_id']}")
        before = found[name].get(row["period_start"], (0, 0))  # two keys may share a name
        found[name][row["period_start"]] = (before[0] + row["leads"], before[1] + row["consented"])
    return dict(found)


def campaign_figures(conn: psycopg.Connection[Any], first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """Each campaign's figures for the periods ending between ``first`` and ``last``, by campaign and day."""
    return conn.execute(CAMPAIGN_FIGURES, (first, last)).fetchall()


def anomalies(conn: psycopg.Connection[Any], first: dt.date, last: dt.date, limit: int = 200) -> list[dict[str, Any]]:
    """The campaign anomalies alerted from ``first`` to ``last`` (both days included, UTC), newest first."""
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    return conn.execute(ANOMALIES, (start, end, limit)).fetchall()
