"""``campaign.sync``: GA4 and Meta Ads figures per campaign, stored, with anomaly alerts.

Campaigns are fetched concurrently (bounded, so the APIs' concurrency limits hold); one
campaign's error does not stop the others, and a retry syncs only the campaigns that failed.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from cep_automation.db import connection
from cep_automation.domain import campaigns
from cep_automation.errors import PermanentError
from cep_automation.plugins.kinds import Ads, Analytics
from cep_automation.records.effects import Ledger
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import JobHandle, current_job
from cep_automation.runtime.steps import StepRunner

CONCURRENCY = 8  # GA4 allows 10 concurrent requests per property; Meta throttles per ad account


class CampaignSyncPayload(BaseModel):
    """No ``campaign_id`` syncs every active campaign; the period defaults to the campaign's life so far."""

    campaign_id: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None


class Sources:
    """The analytics and ads integrations of this run (either may be missing)."""

    def __init__(self) -> None:
        self.analytics = integrations.first(Analytics)
        self.ads = integrations.first(Ads)

    def fetch(self, campaign: dict[str, Any], since: dt.date, until: dt.date) -> campaigns.CampaignFigures:
        analytics = self.analytics.campaign_metrics(campaign["tracking_tag"], since, until) if self.analytics else None
        ads = (self.ads.campaign_metrics(campaign["meta_campaign_id"], since, until)
               if self.ads and campaign["meta_campaign_id"] else None)
        with connection() as conn:
            own = campaigns.count_leads(conn, campaign["id"], since, until)
            figures = campaigns.combine(campaign["id"], since, until, analytics, ads, own)
            campaigns.store(conn, figures)
        return figures


def sync_all(rows: list[dict[str, Any]], sources: Sources, steps: StepRunner, period: tuple[Any, Any],
             handle: JobHandle) -> dict[int, campaigns.CampaignFigures]:
    """Sync every campaign on a bounded thread pool, reporting progress as each finishes."""
    done, lock, results = [0], threading.Lock(), {}

    def one(row: dict[str, Any]) -> None:
        since = period[0] or row["created_at"].date()
        until = period[1] or dt.datetime.now(dt.UTC).date()
        effect = steps.run(f"campaign:{row['id']}", lambda: _figures_json(sources.fetch(row, since, until)))
        with lock:
            if effect is not None:
                results[row["id"]] = _figures_from(effect.result)
            done[0] += 1
            handle.progress(10 + 80 * done[0] // len(rows))

    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="campaign-sync") as pool:
        list(pool.map(one, rows))
    return results


def _figures_json(f: campaigns.CampaignFigures) -> dict[str, Any]:
    return {"campaign_id": f.campaign_id, "period_start": f.period_start.isoformat(),
            "period_end": f.period_end.isoformat(), "clicks": f.clicks, "impressions": f.impressions,
            "leads": f.leads, "spend": f.spend, "provider_id": f"{f.campaign_id}:{f.period_end}"}


def _figures_from(data: dict[str, Any]) -> campaigns.CampaignFigures:
    """Figures back from the ledger (a replayed step) or from this run."""
    return campaigns.CampaignFigures(
        data["campaign_id"], dt.date.fromisoformat(data["period_start"]), dt.date.fromisoformat(data["period_end"]),
        data["clicks"], data["impressions"], data["leads"], data["spend"])


def alert_anomalies(rows: list[dict[str, Any]], results: dict[int, campaigns.CampaignFigures]) -> list[str]:
    """Alert each anomaly, and note those sent (not collapsed) for the daily digest."""
    from cep_automation.runtime.alerts import send_alert

    sent = []
    for row in rows:
        figures = results.get(row["id"])
        for anomaly in campaigns.anomalies(figures, row["budget"], row["name"]) if figures else []:
            outcome = send_alert(integrations.registry(), anomaly.severity, "Campaign anomaly", anomaly.message,
                                 campaign_id=row["id"])
            if not outcome.collapsed:
                with connection() as conn:
                    campaigns.record_anomaly(conn, row["id"], anomaly)
            sent.append(anomaly.message)
    return sent


@job("campaign.sync", schema=CampaignSyncPayload)
def campaign_sync(campaign_id: int | None = None, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Sync one campaign or all active ones; alert on anomalies."""
    payload = CampaignSyncPayload.model_validate({"campaign_id": campaign_id, "since": since, "until": until})
    handle = current_job()
    with connection() as conn:
        rows = campaigns.campaigns_to_sync(conn, payload.campaign_id)
    if payload.campaign_id is not None and not rows:
        raise PermanentError(f"campaign {payload.campaign_id} not found")
    handle.progress(10)
    sources = Sources()
    steps = StepRunner(Ledger(f"campaign.sync:{handle.message_id or uuid.uuid4()}"), handle)
    if not (sources.analytics or sources.ads):
        reason = f"{integrations.why_none(Analytics)}; {integrations.why_none(Ads)}"
        for row in rows:
            steps.skip(f"campaign:{row['id']}", reason)
        return {"synced": 0, "steps": steps.outcomes}
    results = sync_all(rows, sources, steps, (payload.since, payload.until), handle)
    alerts = alert_anomalies(rows, results)
    outcomes = steps.finish()
    handle.progress(100)
    return {"synced": len(results), "alerts": alerts, "steps": outcomes}
