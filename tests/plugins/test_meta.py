"""The Meta Graph integration against the fake Graph API: lead fetch, paginated insights with string
metrics, the lead-counting rule, documented rate-limit and error codes, timeouts, and secrecy in logs."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import meta
from cep_automation.plugins.kinds import CampaignMetrics
from cep_automation.plugins.meta import LEAD_FIELDS, MetaGraph
from cep_automation.testing.fake_meta import FakeMetaGraph

TOKEN = "EAAGsecretMetaPageToken456"
SINCE, UNTIL = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
ANSWERS = {"full_name": "Ana García", "email": "ana.garcia@example.com", "phone_number": "+34600123456",
           "curso_de_interes": "Inglés A1"}


@pytest.fixture
def fake():
    with FakeMetaGraph(TOKEN, page_size=25) as server:
        yield server


@pytest.fixture
def graph(fake, settings_for):
    return MetaGraph(settings_for(meta_access_token=TOKEN, meta_graph_base_url=fake.base_url))


def test_fetch_lead_flattens_the_answers(fake, graph):
    leadgen_id = fake.add_lead(ANSWERS, campaign_id="120210000000001")
    lead = graph.fetch_lead(leadgen_id)
    assert lead["field_data"] == ANSWERS
    assert lead["id"] == leadgen_id and lead["campaign_id"] == "120210000000001" and lead["is_organic"] is False
    (request,) = fake.requests
    assert request.path == f"/v23.0/{leadgen_id}" and request.query == {"fields": [LEAD_FIELDS]}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_organic_lead_without_ad_or_campaign(fake, graph):
    lead = graph.fetch_lead(fake.add_lead({"email": "x@example.com"}, ad_id=None, campaign_id=None, is_organic=True))
    assert "campaign_id" not in lead and lead["is_organic"] is True


def test_unknown_lead_is_permanent_error_100(graph):
    with pytest.raises(PermanentError, match=r"error 100/33 Unsupported get request"):
        graph.fetch_lead("404404404")


def test_expired_token_is_permanent_error_190_without_the_token(fake, settings_for):
    stale = MetaGraph(settings_for(meta_access_token="EAAGexpiredtoken", meta_graph_base_url=fake.base_url))
    with pytest.raises(PermanentError, match="190.*META_ACCESS_TOKEN is invalid or expired") as error:
        stale.fetch_lead(fake.add_lead(ANSWERS))
    assert "EAAGexpiredtoken" not in str(error.value)


def test_insights_follow_three_pages_and_parse_string_metrics(fake, graph):
    fake.page_size = 1
    fake.set_insights("120210000000001", [
        {"impressions": 1000, "clicks": 50, "spend": 12.5, "actions": [{"action_type": "lead", "value": 3}]},
        {"impressions": 2000, "clicks": 70, "spend": 20.25, "actions": [{"action_type": "lead", "value": 4}]},
        {"impressions": 500, "clicks": 5, "spend": 1.1},
    ])
    metrics = graph.campaign_metrics("120210000000001", SINCE, UNTIL)
    assert metrics == CampaignMetrics(clicks=125, impressions=3500, leads=7, spend=33.85)
    pages = [r for r in fake.requests if r.path == "/v23.0/120210000000001/insights"]
    assert len(pages) == 3 and "after" not in pages[0].query and all("after" in p.query for p in pages[1:])
    assert json.loads(pages[0].query["time_range"][0]) == {"since": "2026-03-01", "until": "2026-03-31"}
    assert all("access_token" not in p.query and p.headers["authorization"] == f"Bearer {TOKEN}" for p in pages)


def test_a_next_link_carrying_a_token_is_followed_without_it(fake, graph):
    fake.page_size = 1
    fake.set_insights("1", [{"clicks": 1}, {"clicks": 2}])
    fake.fail_next(200, {"data": [{"clicks": "1"}], "paging": {
        "next": f"{fake.base_url}/1/insights?fields=clicks&after=MQ%3D%3D&access_token={TOKEN}"}})
    assert graph.campaign_metrics("1", SINCE, UNTIL).clicks == 3
    assert "access_token" not in fake.requests[1].query and fake.requests[1].query["after"] == ["MQ=="]


def test_leads_count_the_lead_action_only(fake, graph):
    fake.set_insights("1", [{"impressions": 361324, "spend": "5339.5", "actions": [
        {"action_type": "onsite_conversion.lead_grouped", "value": 51},
        {"action_type": "lead", "value": 51},
        {"action_type": "link_click", "value": 900},
    ]}])
    assert graph.campaign_metrics("1", SINCE, UNTIL) == CampaignMetrics(impressions=361324, leads=51, spend=5339.5)


def test_grouped_leads_alone_are_not_counted(fake, graph):
    fake.set_insights("1", [{"clicks": 4, "actions": [{"action_type": "onsite_conversion.lead_grouped", "value": 9}]}])
    assert graph.campaign_metrics("1", SINCE, UNTIL) == CampaignMetrics(clicks=4)


def test_no_delivery_is_all_zeros(fake, graph):
    fake.set_insights("1", [])
    assert graph.campaign_metrics("1", SINCE, UNTIL) == CampaignMetrics()
    assert fake.requests[-1].query["fields"][0].split(",") == meta.INSIGHT_FIELDS.split(",")


@pytest.mark.parametrize("code", [4, 17, 613, 80000, 80004])
def test_rate_limit_codes_wait_as_the_usage_header_says(code, fake, graph):
    fake.set_insights("1", [{"clicks": 1}])
    fake.rate_limit(code, http_status=400, regain_minutes=7)
    with pytest.raises(TransientError, match=f"error {code}.*rate limited") as error:
        graph.campaign_metrics("1", SINCE, UNTIL)
    assert error.value.retry_after == 420


@pytest.mark.parametrize("status", [400, 403, 429, 500])
def test_rate_limit_without_regain_estimate_backs_off_a_minute(status, fake, graph):
    fake.set_insights("1", [])
    fake.rate_limit(17, http_status=status, regain_minutes=0)
    with pytest.raises(TransientError) as error:
        graph.campaign_metrics("1", SINCE, UNTIL)
    assert error.value.retry_after == 60


def test_retry_after_is_used_when_the_usage_header_has_no_estimate(fake, graph):
    fake.set_insights("1", [])
    fake.rate_limit(80004, regain_minutes=0, retry_after=90)
    with pytest.raises(TransientError) as error:
        graph.campaign_metrics("1", SINCE, UNTIL)
    assert error.value.retry_after == 90


@pytest.mark.parametrize(("code", "subcode", "status", "expected"), [
    (2, 1504043, 400, TransientError),  # intermittent: retry
    (2, None, 503, TransientError),  # service temporarily unavailable
    (1, None, 500, TransientError),  # unknown error
    (2, 1504038, 400, PermanentError),  # query timed out: the same range would again
    (100, 1504018, 400, PermanentError),
    (100, None, 400, PermanentError),
    (190, 463, 401, PermanentError),
    (10, None, 403, PermanentError),
    (200, None, 403, PermanentError),
])
def test_documented_error_codes(code, subcode, status, expected, fake, graph):
    fake.set_insights("1", [])
    fake.fail_with_code(code, status, subcode=subcode)
    with pytest.raises(expected, match=f"error {code}"):
        graph.campaign_metrics("1", SINCE, UNTIL)


def test_non_graph_5xx_is_transient_and_4xx_permanent(fake, graph):
    fake.set_insights("1", [])
    fake.fail_next(502, b"Bad Gateway")
    with pytest.raises(TransientError, match="HTTP 502"):
        graph.campaign_metrics("1", SINCE, UNTIL)
    fake.fail_next(429, b"slow down", headers={"Retry-After": "30"})
    with pytest.raises(TransientError) as error:
        graph.campaign_metrics("1", SINCE, UNTIL)
    assert error.value.retry_after == 30


def test_read_timeout_is_transient(fake, settings_for):
    fake.fail_next(200, {}, delay_s=1.0)
    slow = MetaGraph(settings_for(meta_access_token=TOKEN, meta_graph_base_url=fake.base_url), timeout=(1, 0.2))
    with pytest.raises(TransientError, match="timed out"):
        slow.fetch_lead("1")


def test_disabled_without_token_names_the_setting(settings_for):
    integration = MetaGraph(settings_for())
    assert not integration.enabled and "META_ACCESS_TOKEN" in integration.disabled_reason()


def test_register_integrations_registers_one_meta(settings_for):
    found = []
    meta.register_integrations(register=found.append, settings=settings_for())
    assert [(i.kind, i.name) for i in found] == [("ads", "meta")]


def test_logs_never_show_the_token_or_the_lead(fake, graph, caplog):
    caplog.set_level(logging.DEBUG)
    graph.fetch_lead(fake.add_lead(ANSWERS))
    fake.set_insights("1", [])
    fake.rate_limit(80000, regain_minutes=1)
    with pytest.raises(TransientError):
        graph.campaign_metrics("1", SINCE, UNTIL)
    assert "GET" in caplog.text
    for secret in (TOKEN, "ana.garcia@example.com", "600123456"):
        assert secret not in caplog.text


def test_calls_share_the_apps_rate_and_over_it_the_job_is_postponed(fake, settings_for, redis_client):
    from cep_automation.errors import Postponed

    graph = MetaGraph(settings_for(meta_access_token=TOKEN, meta_graph_base_url=fake.base_url,
                                   meta_calls_per_minute=2))
    graph.limit_wait_s = 0
    leadgen_id = fake.add_lead(ANSWERS, campaign_id="120210000000001")
    graph.fetch_lead(leadgen_id)  # a burst of one: the next call may go 30 s later
    with pytest.raises(Postponed, match=r"meta [0-9a-f]{12}: over its limit \(2 per 60 s\)"):
        graph.fetch_lead(leadgen_id)
    assert len(fake.requests) == 1
