"""Built-in GA4 Data API integration: sessions and key events of one tracked campaign (``runReport``).

``GA4_CREDENTIALS`` is a service-account key (a path to its JSON file, or the JSON itself), exchanged
with google-auth for an ``analytics.readonly`` token at the key's ``token_uri`` and refreshed when it
expires; anything else is taken as a ready OAuth access token.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import threading
from typing import Any

import requests

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import HttpIntegration, retry_after_seconds
from cep_automation.plugins.kinds import Analytics, CampaignMetrics
from cep_automation.redact import redact
from cep_automation.settings import Settings

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
QUOTA_BACKOFF_S = 60.0  # RESOURCE_EXHAUSTED without Retry-After: the hourly and concurrency quotas free up
HINTS = {401: "GA4_CREDENTIALS are invalid or expired", 403: "the credentials cannot read GA4_PROPERTY_ID"}


def classify(response: requests.Response) -> Exception | None:
    """Google's ``{"error": {code, message, status}}``: 429 and 5xx are retried, 400/401/403 are not."""
    try:
        error = response.json()["error"]
        what = redact(f"ga4: HTTP {response.status_code} {error.get('status')}: {error.get('message')}")[:500]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if response.status_code in HINTS:
        what += f"; {HINTS[response.status_code]}"
    if response.status_code == 429:
        return TransientError(what, retry_after=retry_after_seconds(response) or QUOTA_BACKOFF_S)
    if response.status_code >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return PermanentError(what)


def report_request(tracking_tag: str, since: dt.date, until: dt.date) -> dict[str, Any]:
    """The runReport body: sessions and key events of the campaign named ``tracking_tag``."""
    return {
        "dateRanges": [{"startDate": since.isoformat(), "endDate": until.isoformat()}],
        "dimensions": [{"name": "sessionCampaignName"}],
        "metrics": [{"name": "sessions"}, {"name": "keyEvents"}],
        "dimensionFilter": {"filter": {"fieldName": "sessionCampaignName",
                                       "stringFilter": {"matchType": "EXACT", "value": tracking_tag}}},
    }


def metrics_of(report: dict[str, Any]) -> CampaignMetrics:
    """Sum the rows by metric header name; no rows (or no ``rows`` key) means zeros."""
    names = [header.get("name") for header in report.get("metricHeaders") or []] or ["sessions", "keyEvents"]
    totals = {"sessions": 0, "keyEvents": 0}
    for row in report.get("rows") or []:
        for name, value in zip(names, row.get("metricValues") or [], strict=False):
            if name in totals:
                totals[name] += int(float(value.get("value") or 0))
    return CampaignMetrics(clicks=totals["sessions"], leads=totals["keyEvents"])


class GA4(HttpIntegration, Analytics):
    """Reads campaign sessions and key events from one GA4 property.

    Parameters:
      settings: uses ``ga4_property_id``, ``ga4_credentials`` and ``ga4_base_url``.
      timeout: (connect, read) seconds per request, token requests included.
    Raises:
      TransientError: 429 RESOURCE_EXHAUSTED, 500/503, timeouts, an unreachable token endpoint.
      PermanentError: 400/401/403, a key file that is missing or unusable, a refused key.
    """

    name = "ga4"
    required_settings = ("ga4_property_id", "ga4_credentials")
    base_url_setting = "ga4_base_url"

    def __init__(self, settings: Any, *, timeout: tuple[float, float] | None = None) -> None:
        super().__init__(settings, timeout=timeout)
        self._credentials: Any = None  # google-auth service-account credentials, built on first use
        self._lock = threading.Lock()  # campaign.sync calls from several threads

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response)

    def campaign_metrics(self, tracking_tag: str, since: dt.date, until: dt.date) -> CampaignMetrics:
        # Per request, not in headers(): a service account's token expires and is fetched again.
        headers = {"Authorization": f"Bearer {self.access_token()}"}
        report = self.client().post(f"/properties/{self.settings.ga4_property_id}:runReport",
                                    json=report_request(tracking_tag, since, until), headers=headers).json()
        return metrics_of(report)

    def access_token(self) -> str:
        """The raw token as given, or the service account's token (fetched again once expired)."""
        secret = self.settings.ga4_credentials.get_secret_value().strip()
        if not is_service_account(secret):
            return str(secret)
        with self._lock:
            if self._credentials is None:
                self._credentials = load_service_account(secret)
            if not self._credentials.valid:
                refresh(self._credentials, self.timeout)
            return str(self._credentials.token)


def is_service_account(secret: str) -> bool:
    return secret.startswith("{") or secret.endswith(".json") or os.path.isfile(secret)


def load_service_account(secret: str) -> Any:
    """google-auth credentials from the key JSON or its path; PermanentError (without the key) if unusable."""
    from google.oauth2 import service_account

    factory = service_account.Credentials
    try:
        if secret.startswith("{"):
            return factory.from_service_account_info(  # type: ignore[no-untyped-call]  # google-auth is unannotated
                json.loads(secret), scopes=[SCOPE])
        return factory.from_service_account_file(  # type: ignore[no-untyped-call]  # google-auth is unannotated
            secret, scopes=[SCOPE])
    except FileNotFoundError:
        raise PermanentError(f"ga4: GA4_CREDENTIALS names a file that does not exist: {secret}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise PermanentError(f"ga4: GA4_CREDENTIALS is not a usable service-account key ({type(exc).__name__})") \
            from None


def refresh(credentials: Any, timeout: tuple[float, float]) -> None:
    """Exchange the signed assertion for an access token at the key's ``token_uri``."""
    from google.auth import exceptions
    from google.auth.transport.requests import Request

    session = requests.Session()
    try:
        credentials.refresh(functools.partial(Request(session), timeout=timeout))
    except exceptions.TransportError as exc:
        raise TransientError(f"ga4: token endpoint unreachable ({type(exc).__name__})") from None
    except exceptions.RefreshError as exc:
        what = redact(f"ga4: the token endpoint refused the service-account key: {exc.args[0] if exc.args else ''}")
        raise (TransientError(what) if exc.retryable else PermanentError(what)) from None
    finally:
        session.close()


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(GA4(settings))
