"""Campaign metrics: combining analytics and ads figures, storing them, spotting anomalies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import DictRow

from cep_automation.plugins.kinds import CampaignMetrics

LOW_CTR_PERCENT = 0.5
MIN_IMPRESSIONS_FOR_CTR = 1000  # below this a low CTR is noise, not an anomaly


@dataclass(frozen=True)
class CampaignFigures:
    """What one sync stores for a campaign and period."""

    campaign_id: int
    period_start: dt.date
    period_end: dt.date
    clicks: int
    impressions: int
    leads: int
    spend: float

    @property
    def ctr(self) -> float | None:
        """Clicks per impression, in percent."""
        return round(100 * self.clicks / self.impressions, 4) if self.impressions else None

    @property
    def cpl(self) -> float | None:
        """Cost per lead."""
        return round(self.spend / self.leads, 2) if self.leads else None


def combine(campaign_id: int, since: dt.date, until: dt.date, analytics: CampaignMetrics | None,
            ads: CampaignMetrics | None, own_leads: int) -> CampaignFigures:
    """Ads clicks and impressions when the campaign runs on Meta, else analytics sessions; leads are
    ours (the leads table is the truth), falling back to what the platforms counted."""
    clicks = ads.clicks if ads else (analytics.clicks if analytics else 0)
    platform_leads = max(ads.leads if ads else 0, analytics.leads if analytics else 0)
    return CampaignFigures(campaign_id, since, until, clicks, ads.impressions if ads else 0,
                           own_leads or platform_leads, ads.spend if ads else 0.0)


class Anomaly(NamedTuple):
    """One anomaly of a campaign's figures: ``kind`` is ``low_ctr``, ``budget_spent`` or ``budget_90``."""

    kind: str
    severity: str
    message: str


def anomalies(figures: CampaignFigures, budget: Decimal | None, name: str) -> list[Anomaly]:
    """Each anomaly: a low CTR, a budget spent or nearly spent."""
    found = []
    if figures.ctr is not None and figures.impressions >= MIN_IMPRESSIONS_FOR_CTR and figures.ctr < LOW_CTR_PERCENT:
        found.append(Anomaly("low_ctr", "medium",
                             f"Low CTR in campaign {name}: {figures.ctr:.2f}% (below {LOW_CTR_PERCENT}%)"))
    if budget:
        if figures.spend >= float(budget):
            found.append(Anomaly("budget_spent", "high",
                                 f"Budget spent in campaign {name}: {figures.spend:.2f} of {budget}"))
        elif figures.spend >= 0.9 * float(budget):
            found.append(Anomaly("budget_90", "medium",
                                 f"Budget 90% spent in campaign {name}: {figures.spend:.2f} of {budget}"))
    return found


def record_anomaly(conn: psycopg.Connection[Any], campaign_id: int, anomaly: Anomaly) -> None:
    """Note an anomaly that was alerted (``campaign_anomalies``: the daily digest lists a day's)."""
    conn.execute("INSERT INTO campaign_anomalies (campaign_id, kind, severity, message) VALUES (%s, %s, %s, %s)",
                 (campaign_id, anomaly.kind, anomaly.severity, anomaly.message))


def campaigns_to_sync(conn: psycopg.Connection[DictRow], campaign_id: int | None) -> list[dict[str, Any]]:
    """One campaign by id (whatever its status), or every active one."""
    query = ("SELECT id, name, tracking_tag, meta_campaign_id, budget, created_at FROM campaigns"
             " WHERE (%(id)s::bigint IS NULL AND status = 'active') OR id = %(id)s ORDER BY id")
    return conn.execute(query, {"id": campaign_id}).fetchall()


# An index range scan of leads_campaign_created_idx (migration 0003), not a scan of the whole table.
COUNT_LEADS = "SELECT count(*) AS n FROM leads WHERE campaign_id = %s AND created_at >= %s AND created_at < %s"


def count_leads_params(campaign_id: int, since: dt.date, until: dt.date) -> tuple[int, dt.date, dt.date]:
    """The parameters of :data:`COUNT_LEADS`: the period is inclusive of ``until``."""
    return campaign_id, since, until + dt.timedelta(days=1)


def count_leads(conn: psycopg.Connection[DictRow], campaign_id: int, since: dt.date, until: dt.date) -> int:
    """Our own leads of a campaign created from ``since`` to ``until`` (both days included)."""
    row = conn.execute(COUNT_LEADS, count_leads_params(campaign_id, since, until)).fetchone()
    assert row is not None  # count(*) always returns a row
    return int(row["n"])


def store(conn: psycopg.Connection[DictRow], f: CampaignFigures) -> None:
    """Upsert the figures of one campaign and period."""
    conn.execute(
        "INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, leads, spend,"
        " ctr, cpl) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (campaign_id, period_start, period_end)"
        " DO UPDATE SET clicks = EXCLUDED.clicks, impressions = EXCLUDED.impressions, leads = EXCLUDED.leads,"
        " spend = EXCLUDED.spend, ctr = EXCLUDED.ctr, cpl = EXCLUDED.cpl, synced_at = now()",
        (f.campaign_id, f.period_start, f.period_end, f.clicks, f.impressions, f.leads, f.spend, f.ctr, f.cpl))
