"""A fake Meta Graph API for Lead Ads leads (``GET /{version}/{leadgen_id}``) and campaign insights.

Point ``META_GRAPH_BASE_URL`` at :attr:`FakeMetaGraph.base_url`. Insights come back as Meta sends them:
every metric a string, metrics with no events left out, ``data: []`` without delivery, and pages of
``page_size`` rows linked by ``paging.next``. :meth:`FakeMetaGraph.rate_limit` answers the documented
rate-limit codes with an ``X-Business-Use-Case-Usage`` header (api-contracts §4–5).
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any, ClassVar
from urllib.parse import urlencode

from cep_automation.testing.fake_graph import FakeGraph
from cep_automation.testing.fakes import Recorded, Reply

TITLES: dict[int, str] = {
    4: "Application request limit reached", 17: "User request limit reached",
    613: "Calls to this api have exceeded the rate limit.",
    80000: "There have been too many calls from this ad-account. Wait a bit and try again.",
    80004: "There have been too many calls to this ad-account. Wait a bit and try again.",
    1: "An unknown error occurred", 2: "Service temporarily unavailable", 100: "Invalid parameter",
    190: "Error validating access token: Session has expired", 10: "Permission denied",
}
SUBCODES = {4: 1504022, 17: 2446079, 613: 1487742}  # the subcodes api-contracts §5 lists for each limit
BUC_TYPES = {80000: "ads_insights", 80004: "ads_management"}
_ids = itertools.count(1)


class FakeMetaGraph(FakeGraph):
    """Leads and insights on 127.0.0.1.

    Parameters:
      token: the access token requests must carry.
      page_size: insights rows per page (a request's ``limit`` wins).
    Attributes:
      leads: the stored leads by id, as the Graph API would answer them.
      insights: rows per campaign id (numbers as given; the fake sends them as strings).
    """

    TITLES = TITLES
    STATUSES: ClassVar[dict[int, int]] = {190: 401, 1: 500, 2: 503}
    TRANSIENT: ClassVar[frozenset[int]] = frozenset({1, 2, 4, 17, 613, 80000, 80004})

    def __init__(self, token: str = "test-token", version: str = "v23.0", page_size: int = 25) -> None:
        super().__init__(token, version)
        self.page_size = page_size
        self.leads: dict[str, dict[str, Any]] = {}
        self.insights: dict[str, list[dict[str, Any]]] = {}

    def add_lead(self, answers: dict[str, str], *, leadgen_id: str | None = None, form_id: str = "1111",
                 ad_id: str | None = "2222", campaign_id: str | None = "3333", is_organic: bool = False,
                 created_time: str = "2025-10-08T09:09:27+0000") -> str:
        """Store a lead with these form answers; returns its id. ``ad_id``/``campaign_id`` None = organic/test."""
        leadgen_id = leadgen_id or str(9_000_000_000 + next(_ids))
        lead = {"id": leadgen_id, "created_time": created_time, "form_id": form_id, "is_organic": is_organic,
                "field_data": [{"name": name, "values": [value]} for name, value in answers.items()],
                "platform": "fb"}
        lead.update({k: v for k, v in (("ad_id", ad_id), ("campaign_id", campaign_id)) if v is not None})
        self.leads[leadgen_id] = lead
        return leadgen_id

    def set_insights(self, campaign_id: str, rows: list[dict[str, Any]]) -> None:
        """The campaign's rows, e.g. ``{"impressions": 10, "actions": [{"action_type": "lead", "value": 2}]}``."""
        self.insights[campaign_id] = rows

    def rate_limit(self, code: int = 80000, http_status: int = 400, *, regain_minutes: int = 0,
                   retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next requests with rate-limit ``code`` (4, 17, 613, 80000, 80004) and usage headers."""
        usage = {"act_1234": [{"type": BUC_TYPES.get(code, "ads_insights"), "call_count": 100, "total_cputime": 37,
                               "total_time": 41, "estimated_time_to_regain_access": regain_minutes,
                               "ads_api_access_tier": "standard_access"}]}
        headers = {"X-Business-Use-Case-Usage": json.dumps(usage)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fail_with_code(code, http_status, times=times, headers=headers, subcode=SUBCODES.get(code))

    def route(self, request: Recorded, path: str) -> Reply:
        parts = path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 1 and parts[0] in self.leads:
            return Reply(200, self.lead_answer(parts[0], request))
        if request.method == "GET" and parts[1:] == ["insights"] and parts[0] in self.insights:
            return self.insights_page(parts[0], request)
        return self.unsupported(request, path)

    def lead_answer(self, leadgen_id: str, request: Recorded) -> dict[str, Any]:
        lead = self.leads[leadgen_id]
        fields = _fields(request)
        return {k: v for k, v in lead.items() if not fields or k in fields or k == "id"}

    def insights_page(self, campaign_id: str, request: Recorded) -> Reply:
        since, until = _time_range(request)
        rows = [_as_sent(row, campaign_id, since, until, _fields(request)) for row in self.insights[campaign_id]]
        start = int(base64.b64decode(request.query["after"][0])) if "after" in request.query else 0
        size = int(request.query.get("limit", [self.page_size])[0])
        page: dict[str, Any] = {"data": rows[start:start + size]}
        if rows:
            page["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(start + size - 1)}}
        if start + size < len(rows):
            query = {k: v[0] for k, v in request.query.items()}
            query["after"] = _cursor(start + size)
            page["paging"]["next"] = f"{self.base_url}/{campaign_id}/insights?{urlencode(query)}"
        return Reply(200, page)


def _cursor(index: int) -> str:
    return base64.b64encode(str(max(index, 0)).encode()).decode()


def _fields(request: Recorded) -> set[str]:
    return {f for f in (request.query.get("fields") or [""])[0].split(",") if f}


def _time_range(request: Recorded) -> tuple[str, str]:
    span = json.loads((request.query.get("time_range") or ["{}"])[0])
    return span.get("since", "2025-01-01"), span.get("until", "2025-01-30")


def _as_sent(row: dict[str, Any], campaign_id: str, since: str, until: str, fields: set[str]) -> dict[str, Any]:
    """A row as Meta sends it: requested fields only, numbers as strings, no entry for an empty metric."""
    sent: dict[str, Any] = {"campaign_id": campaign_id, "date_start": since, "date_stop": until}
    for name, value in row.items():
        if value is None or (fields and name not in fields):
            continue
        if isinstance(value, list):
            sent[name] = [{**item, "value": str(item["value"])} for item in value]
        else:
            sent[name] = str(value)
    return sent
