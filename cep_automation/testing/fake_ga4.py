"""A fake GA4 Data API (``POST /v1beta/properties/{id}:runReport``) with an OAuth token endpoint.

Point ``GA4_BASE_URL`` at :attr:`FakeGA4.base_url`, and a service-account key's ``token_uri`` at
:attr:`FakeGA4.token_uri`: the fake swaps the signed JWT assertion for an access token, as Google does.
Errors use Google's format ``{"error": {code, message, status}}`` (api-contracts §6).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL", 503: "UNAVAILABLE"}
MESSAGES = {
    400: "Field unknownMetric is not a valid metric.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
         "valid authentication credential.",
    403: "User does not have sufficient permissions for this property.",
    429: "Exhausted property tokens per hour for this property.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
DIMENSIONS = ("sessionCampaignName", "date")
METRICS = {"sessions": "sessions", "keyEvents": "keyEvents", "conversions": "keyEvents"}  # legacy name accepted
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def google_error(status: int, message: str | None = None) -> dict[str, Any]:
    return {"error": {"code": status, "message": message or MESSAGES.get(status, "Error"),
                      "status": STATUSES.get(status, "UNKNOWN")}}


class FakeGA4(FakeServer):
    """runReport for one property, over rows added with :meth:`add_row`.

    Parameters:
      property_id: the property that exists (others get 403 PERMISSION_DENIED).
      tokens: access tokens accepted as they are (the raw-token configuration).
      omit_empty_rows: leave ``rows``/``rowCount`` out of an empty report (else ``rows: []``).
    Attributes:
      assertions: the claims of each JWT assertion the token endpoint received.
    """

    def __init__(self, property_id: str = "123456789", tokens: tuple[str, ...] = (), version: str = "v1beta",
                 omit_empty_rows: bool = True) -> None:
        super().__init__()
        self.property_id = property_id
        self.version = version
        self.tokens = set(tokens)
        self.omit_empty_rows = omit_empty_rows
        self.assertions: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        """The value for ``GA4_BASE_URL``."""
        return f"{self.url}/{self.version}"

    @property
    def token_uri(self) -> str:
        """The ``token_uri`` for a service-account key used against this fake."""
        return f"{self.url}/token"

    def add_row(self, campaign: str, sessions: int, key_events: int, date: str = "20260301") -> None:
        """Traffic of a campaign on a day (``YYYYMMDD``, as GA4's ``date`` dimension reads)."""
        self.rows.append({"sessionCampaignName": campaign, "date": date, "sessions": sessions, "keyEvents": key_events})

    def fail_with_status(self, status: int, message: str | None = None, *, retry_after: float | None = None,
                         times: int = 1) -> None:
        """Answer the next requests with Google's error for ``status`` (400, 401, 403, 429, 500, 503)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self.fail_next(status, google_error(status, message), headers, times=times)

    def handle(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == "/token":
            return self.issue_token(request)
        prefix = f"/{self.version}/properties/"
        if request.method != "POST" or not request.path.startswith(prefix) or not request.path.endswith(":runReport"):
            return Reply(404, google_error(404, f"Method not found: {request.path}"))
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in self.tokens:
            return Reply(401, google_error(401))
        if request.path[len(prefix):].removesuffix(":runReport") != self.property_id:
            return Reply(403, google_error(403))
        return self.run_report(request.json or {})

    def issue_token(self, request: Recorded) -> Reply:
        """Google's token endpoint for the JWT-bearer grant (the signature is not checked)."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or form.get("assertion", "").count(".") != 2:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        payload = form["assertion"].split(".")[1]
        self.assertions.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        token = "ya29.fake-" + secrets.token_urlsafe(16)
        self.tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def run_report(self, body: dict[str, Any]) -> Reply:
        dimensions = [d.get("name") for d in body.get("dimensions") or []]
        metrics = [m.get("name") for m in body.get("metrics") or []]
        unknown = [n for n in dimensions if n not in DIMENSIONS] + [n for n in metrics if n not in METRICS]
        if unknown or not metrics:
            what = f"Field {unknown[0]} is not valid." if unknown else "At least one metric is required."
            return Reply(400, google_error(400, what))
        totals: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * len(metrics))
        for row in filter(lambda r: _matches(r, body), self.rows):
            group = totals[tuple(str(row[d]) for d in dimensions)]
            for i, name in enumerate(metrics):
                group[i] += row[METRICS[name]]
        return Reply(200, self.report(dimensions, metrics, totals))

    def report(self, dimensions: list[str], metrics: list[str], totals: dict[tuple[str, ...], list[int]]) -> Any:
        answer: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in dimensions],
            "metricHeaders": [{"name": m, "type": "TYPE_INTEGER"} for m in metrics],
            "metadata": {"currencyCode": "EUR", "timeZone": "Europe/Madrid"},
            "kind": "analyticsData#runReport",
        }
        if totals or not self.omit_empty_rows:
            answer["rows"] = [{"dimensionValues": [{"value": v} for v in key],
                               "metricValues": [{"value": str(n)} for n in values]} for key, values in totals.items()]
            answer["rowCount"] = len(totals)
        return answer


def _matches(row: dict[str, Any], body: dict[str, Any]) -> bool:
    """The row is in the first date range and passes a ``stringFilter`` on one field, if any."""
    span = (body.get("dateRanges") or [{}])[0]
    day = f"{row['date'][:4]}-{row['date'][4:6]}-{row['date'][6:]}"
    start, end = (span.get(k) if _ISO_DATE.match(str(span.get(k))) else day for k in ("startDate", "endDate"))
    if not start <= day <= end:  # relative dates ("7daysAgo", "today") are not filtered
        return False
    condition = (body.get("dimensionFilter") or {}).get("filter")
    if not condition:
        return True
    wanted = condition.get("stringFilter", {})
    value, expected = str(row.get(condition.get("fieldName"), "")), str(wanted.get("value", ""))
    if not wanted.get("caseSensitive"):
        value, expected = value.lower(), expected.lower()
    return value == expected if wanted.get("matchType", "EXACT") == "EXACT" else expected in value
