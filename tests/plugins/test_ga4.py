"""The GA4 integration against the fake Data API: the service-account token flow through google-auth,
a raw token, the runReport body, empty reports, Google's error statuses, timeouts, and secrecy in logs."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import ga4
from cep_automation.plugins.ga4 import GA4
from cep_automation.plugins.kinds import CampaignMetrics
from cep_automation.settings import load_settings
from cep_automation.testing.fake_ga4 import FakeGA4

PROPERTY = "123456789"
RAW_TOKEN = "ya29.rawSecretAccessToken789"
SINCE, UNTIL = dt.date(2026, 3, 1), dt.date(2026, 3, 31)


@pytest.fixture
def fake():
    with FakeGA4(PROPERTY, tokens=(RAW_TOKEN,)) as server:
        yield server


@pytest.fixture(scope="module")
def private_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def key_file(tmp_path, fake, private_key_pem):
    """A service-account key whose token_uri is the fake's token endpoint."""
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "cep-test", "private_key_id": "0123abcd",
        "private_key": private_key_pem, "client_email": "reports@cep-test.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": fake.token_uri,
    }))
    return path


@pytest.fixture
def settings_for(cep_services, fake):
    def make(**values):
        values.setdefault("ga4_base_url", fake.base_url)
        return load_settings(_env_file=None, redis_url=cep_services.redis_url,
                             database_url=cep_services.database_url, **values)

    return make


@pytest.fixture
def analytics(settings_for):
    return GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=RAW_TOKEN))


def test_raw_token_report_sends_the_documented_body(fake, analytics):
    fake.add_row("spring-2026", sessions=120, key_events=7, date="20260305")
    assert analytics.campaign_metrics("spring-2026", SINCE, UNTIL) == CampaignMetrics(clicks=120, leads=7)
    (request,) = fake.requests
    assert request.path == f"/v1beta/properties/{PROPERTY}:runReport"
    assert request.headers["authorization"] == f"Bearer {RAW_TOKEN}"
    assert request.json == {
        "dateRanges": [{"startDate": "2026-03-01", "endDate": "2026-03-31"}],
        "dimensions": [{"name": "sessionCampaignName"}],
        "metrics": [{"name": "sessions"}, {"name": "keyEvents"}],
        "dimensionFilter": {"filter": {"fieldName": "sessionCampaignName",
                                       "stringFilter": {"matchType": "EXACT", "value": "spring-2026"}}},
    }


def test_only_the_campaign_and_period_are_counted(fake, analytics):
    fake.add_row("spring-2026", 100, 5, date="20260302")
    fake.add_row("spring-2026", 20, 2, date="20260330")
    fake.add_row("spring-2026", 999, 99, date="20260401")  # after the period
    fake.add_row("autumn-2026", 50, 50, date="20260310")  # another campaign
    assert analytics.campaign_metrics("spring-2026", SINCE, UNTIL) == CampaignMetrics(clicks=120, leads=7)


@pytest.mark.parametrize("omit", [True, False])
def test_no_rows_is_zeros(omit, settings_for):
    with FakeGA4(PROPERTY, tokens=(RAW_TOKEN,), omit_empty_rows=omit) as empty:
        settings = settings_for(ga4_property_id=PROPERTY, ga4_credentials=RAW_TOKEN, ga4_base_url=empty.base_url)
        assert GA4(settings).campaign_metrics("nobody", SINCE, UNTIL) == CampaignMetrics()


def test_service_account_gets_a_readonly_token_and_reuses_it(fake, key_file, settings_for):
    fake.add_row("spring-2026", 10, 1, date="20260305")
    analytics = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=str(key_file)))
    assert analytics.campaign_metrics("spring-2026", SINCE, UNTIL) == CampaignMetrics(clicks=10, leads=1)
    assert analytics.campaign_metrics("spring-2026", SINCE, UNTIL) == CampaignMetrics(clicks=10, leads=1)
    token_requests = [r for r in fake.requests if r.path == "/token"]
    reports = [r for r in fake.requests if r.path.endswith(":runReport")]
    assert len(token_requests) == 1 and len(reports) == 2
    (claims,) = fake.assertions
    assert claims["scope"] == ga4.SCOPE and claims["aud"]  # google-auth always names Google's endpoint as aud
    assert claims["iss"] == "reports@cep-test.iam.gserviceaccount.com"
    assert reports[0].headers["authorization"].startswith("Bearer ya29.fake-")


def test_service_account_key_given_inline(fake, key_file, settings_for):
    analytics = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=key_file.read_text()))
    assert analytics.campaign_metrics("x", SINCE, UNTIL) == CampaignMetrics() and len(fake.assertions) == 1


def test_a_refused_key_is_permanent(fake, key_file, settings_for):
    fake.fail_next(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    analytics = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=str(key_file)))
    with pytest.raises(PermanentError, match="refused the service-account key: invalid_grant"):
        analytics.campaign_metrics("x", SINCE, UNTIL)


def test_an_unreachable_token_endpoint_is_transient(key_file, settings_for):
    from cep_automation.dev.embedded import free_port

    key = json.loads(key_file.read_text()) | {"token_uri": f"http://127.0.0.1:{free_port()}/token"}
    key_file.write_text(json.dumps(key))
    with pytest.raises(TransientError, match="token endpoint unreachable"):
        GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=str(key_file))).campaign_metrics("x", SINCE, UNTIL)


@pytest.mark.parametrize("content", [None, "{not json", '{"type": "service_account"}'])
def test_a_missing_or_broken_key_file_is_permanent(content, tmp_path, settings_for):
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    analytics = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=str(path)))
    with pytest.raises(PermanentError, match="GA4_CREDENTIALS"):
        analytics.campaign_metrics("x", SINCE, UNTIL)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_quota_and_server_errors_are_transient(status, fake, analytics):
    fake.fail_with_status(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        analytics.campaign_metrics("x", SINCE, UNTIL)


def test_resource_exhausted_honours_retry_after_else_backs_off(fake, analytics):
    fake.fail_with_status(429, retry_after=17)
    with pytest.raises(TransientError, match="RESOURCE_EXHAUSTED") as error:
        analytics.campaign_metrics("x", SINCE, UNTIL)
    assert error.value.retry_after == 17
    fake.fail_with_status(429)
    with pytest.raises(TransientError) as error:
        analytics.campaign_metrics("x", SINCE, UNTIL)
    assert error.value.retry_after == ga4.QUOTA_BACKOFF_S


@pytest.mark.parametrize(("status", "name"), [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"),
                                              (403, "PERMISSION_DENIED")])
def test_client_errors_are_permanent(status, name, fake, analytics):
    fake.fail_with_status(status)
    with pytest.raises(PermanentError, match=name):
        analytics.campaign_metrics("x", SINCE, UNTIL)


def test_an_unknown_token_says_the_credentials_are_invalid(settings_for):
    analytics = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials="ya29.revoked"))
    with pytest.raises(PermanentError, match="GA4_CREDENTIALS are invalid or expired") as error:
        analytics.campaign_metrics("x", SINCE, UNTIL)
    assert "ya29.revoked" not in str(error.value)


def test_another_property_is_permission_denied(settings_for):
    analytics = GA4(settings_for(ga4_property_id="999", ga4_credentials=RAW_TOKEN))
    with pytest.raises(PermanentError, match="PERMISSION_DENIED"):
        analytics.campaign_metrics("x", SINCE, UNTIL)


def test_read_timeout_is_transient(fake, settings_for):
    fake.fail_next(200, {}, delay_s=1.0)
    slow = GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=RAW_TOKEN), timeout=(1, 0.2))
    with pytest.raises(TransientError, match="timed out"):
        slow.campaign_metrics("x", SINCE, UNTIL)


@pytest.mark.parametrize("missing", ["ga4_property_id", "ga4_credentials"])
def test_disabled_without_credentials_names_the_setting(missing, settings_for):
    values = {"ga4_property_id": PROPERTY, "ga4_credentials": RAW_TOKEN}
    del values[missing]
    integration = GA4(settings_for(**values))
    assert not integration.enabled and missing.upper() in integration.disabled_reason()


def test_register_integrations_registers_one_ga4(settings_for):
    found = []
    ga4.register_integrations(register=found.append, settings=settings_for())
    assert [(i.kind, i.name) for i in found] == [("analytics", "ga4")]


def test_logs_never_show_tokens_or_the_key(fake, key_file, settings_for, private_key_pem, caplog):
    caplog.set_level(logging.DEBUG)
    GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=RAW_TOKEN)).campaign_metrics("x", SINCE, UNTIL)
    GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=str(key_file))).campaign_metrics("x", SINCE, UNTIL)
    fake.fail_with_status(401)
    with pytest.raises(PermanentError):
        GA4(settings_for(ga4_property_id=PROPERTY, ga4_credentials=RAW_TOKEN)).campaign_metrics("x", SINCE, UNTIL)
    issued = [t for t in fake.tokens if t.startswith("ya29.fake-")]
    assert "runReport" in caplog.text and issued
    for secret in (RAW_TOKEN, *issued, private_key_pem.splitlines()[1]):
        assert secret not in caplog.text
