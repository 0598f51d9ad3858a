"""Built-in Meta Graph integration: fetch a Lead Ads lead, and a campaign's Marketing API insights.

The token travels only in the ``Authorization`` header (never in a URL that could be logged), and
``paging.next`` is followed by its query on our own base URL, so the token never goes to another host.
Insights metrics arrive as strings, absent when zero; ``lead`` and ``onsite_conversion.lead_grouped``
count the same events, so only ``lead`` is counted (api-contracts §5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from cep_automation.errors import PermanentError, TransientError
from cep_automation.flow import Limit, hold
from cep_automation.plugins.graph import GraphError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration, retry_after_seconds
from cep_automation.plugins.kinds import Ads, CampaignMetrics
from cep_automation.settings import Settings

LEAD_FIELDS = "id,created_time,field_data,form_id,ad_id,campaign_id,is_organic"
INSIGHT_FIELDS = "campaign_id,campaign_name,impressions,clicks,spend,ctr,cpc,actions,cost_per_action_type"
RATE_LIMIT_CODES = frozenset({4, 17, 613, 80000, 80004})
RATE_LIMIT_BACKOFF_S = 60.0  # when neither X-Business-Use-Case-Usage nor Retry-After says more
# (code, subcode) pairs Meta documents as "the query timed out": the same query would time out again.
TIMEOUT_SUBCODES = frozenset({(100, 1504018), (2, 1504038)})
MAX_PAGES = 1000  # a guard against a paging loop; insights of one campaign never come close
LIMIT_WAIT_S = 10.0  # a call waits this long for the app's rate, then the job is postponed (not failed)


def regain_access_seconds(response: requests.Response) -> float | None:
    """The longest ``estimated_time_to_regain_access`` (minutes) in X-Business-Use-Case-Usage, in seconds."""
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
        minutes = [float(entry.get("estimated_time_to_regain_access") or 0)
                   for entries in usage.values() for entry in entries]
    except (ValueError, AttributeError, TypeError):
        return None
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else None


def classify(response: requests.Response) -> Exception | None:
    """TransientError or PermanentError for a Graph error object; None (decide by status) otherwise."""
    error = GraphError.parse(response)
    if error is None:
        return None
    if error.code in RATE_LIMIT_CODES:
        wait = regain_access_seconds(response) or retry_after_seconds(response) or RATE_LIMIT_BACKOFF_S
        return TransientError(error.describe("meta", "rate limited"), retry_after=wait)
    if (error.code, error.subcode) in TIMEOUT_SUBCODES:
        return PermanentError(error.describe("meta", "the query timed out at Meta: shrink the date range"))
    if error.code == 190:
        return PermanentError(error.describe("meta", "META_ACCESS_TOKEN is invalid or expired"))
    if error.code in (1, 2):  # unknown error / service temporarily unavailable (2/1504043: intermittent)
        return TransientError(error.describe("meta"), retry_after=retry_after_seconds(response))
    if error.code in (10, 100) or 200 <= error.code < 300 or not error.retryable_status:
        return PermanentError(error.describe("meta"))
    return TransientError(error.describe("meta"), retry_after=retry_after_seconds(response))


class MetaGraph(HttpIntegration, Ads):
    """Reads leads and campaign insights from the Meta Graph API.

    Parameters:
      settings: uses ``meta_access_token`` and ``meta_graph_base_url`` (which carries the version).
      timeout: (connect, read) seconds per request.
    Raises:
      TransientError: rate limits (4, 17, 613, 80000, 80004, waiting as X-Business-Use-Case-Usage says),
        1/2 (e.g. 2/1504043), 5xx and timeouts.
      PermanentError: unknown lead or bad parameter (100), expired token (190), permissions, query timeouts.
    """

    name = "meta"
    required_settings = ("meta_access_token",)
    base_url_setting = "meta_graph_base_url"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.meta_access_token.get_secret_value()}"}

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    limit_wait_s = LIMIT_WAIT_S  # how long a call waits for the app's rate before the job is postponed

    def calls(self) -> Limit:
        """Graph API calls per app (its access token), shared by every worker (flow control): Meta throttles by
        usage and answers codes 4/17/613 when it is exceeded; staying under a rate keeps bursts from getting there."""
        rate = self.settings.meta_calls_per_minute
        # A tenth of a minute's calls at once: campaign.sync asks for a hundred campaigns' insights together.
        return Limit("meta", rate=rate, period_s=60, burst=max(1, rate // 10), wait_s=self.limit_wait_s)

    def _app(self) -> str:
        return hashlib.sha256(self.settings.meta_access_token.get_secret_value().encode()).hexdigest()[:12]

    def _get(self, path: str, params: dict[str, str]) -> Any:
        with hold(self.calls(), self._app()):
            return self.client().get(path, params=params).json()

    def fetch_lead(self, leadgen_id: str) -> dict[str, Any]:
        lead = self._get(f"/{leadgen_id}", {"fields": LEAD_FIELDS})
        answers: dict[str, str] = {}
        for item in lead.get("field_data") or []:
            values = item.get("values") or [""]
            answers.setdefault(str(item.get("name")), str(values[0]))
        return {**lead, "field_data": answers}

    def campaign_metrics(self, campaign_id: str, since: dt.date, until: dt.date) -> CampaignMetrics:
        params: dict[str, str] | None = {
            "fields": INSIGHT_FIELDS,
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
        }
        rows: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if params is None:
                break
            page = self._get(f"/{campaign_id}/insights", params)
            rows.extend(page.get("data") or [])
            params = next_params(page)
        return sum_rows(rows)


def next_params(page: dict[str, Any]) -> dict[str, str] | None:
    """The query of ``paging.next`` without any ``access_token``; None on the last page."""
    link = (page.get("paging") or {}).get("next")
    if not link:
        return None
    return {name: value for name, value in parse_qsl(urlsplit(link).query) if name != "access_token"}


def sum_rows(rows: list[dict[str, Any]]) -> CampaignMetrics:
    """Add up insights rows; a missing metric is 0."""
    return CampaignMetrics(clicks=sum(int(_number(r.get("clicks"))) for r in rows),
                           impressions=sum(int(_number(r.get("impressions"))) for r in rows),
                           leads=sum(int(_number(lead_actions(r))) for r in rows),
                           spend=round(sum(_number(r.get("spend")) for r in rows), 2))


def lead_actions(row: dict[str, Any]) -> Any:
    """The ``lead`` action's value only: ``onsite_conversion.lead_grouped`` counts the same leads again."""
    return next((a.get("value") for a in row.get("actions") or [] if a.get("action_type") == "lead"), 0)


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        raise PermanentError(f"meta: insights metric is not a number: {str(value)[:40]!r}") from None


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(MetaGraph(settings))
