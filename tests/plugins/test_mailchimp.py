"""The Mailchimp integration against the fake Marketing API: upserts, tags, error classes, timeouts, redaction."""

from __future__ import annotations

import base64
import hashlib
import logging
import os

import pytest

from cep_automation.dev.embedded import free_port
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import collect_integrations, mailchimp
from cep_automation.plugins.kinds import Contact
from cep_automation.plugins.mailchimp import Mailchimp
from cep_automation.testing.fake_mailchimp import FakeMailchimp

KEY = "0123456789abcdef0123456789abcdef-us21"
ANA = Contact(email=" Ana@Example.COM ", first_name="Ana", last_name="García", phone="+34 600 123 456",
              tags=("curso-a1", "meta"), merge_fields={"SOURCE": "meta_ads"})
ANA_HASH = hashlib.md5(b"ana@example.com").hexdigest()


@pytest.fixture
def fake():
    with FakeMailchimp(KEY, lists=("list1",)) as server:
        yield server


@pytest.fixture
def integration(fake, settings_for):
    return Mailchimp(settings_for(mailchimp_api_key=KEY, mailchimp_list_id="list1",
                                  mailchimp_base_url=fake.base_url))


def test_upsert_puts_member_by_trimmed_lowercased_hash_then_tags(fake, integration):
    assert integration.upsert_contact(ANA) == ANA_HASH
    put, tags = fake.requests
    assert (put.method, put.path) == ("PUT", f"/3.0/lists/list1/members/{ANA_HASH}")
    assert put.json == {"email_address": "Ana@Example.COM", "status_if_new": "subscribed",
                        "merge_fields": {"FNAME": "Ana", "LNAME": "García", "PHONE": "+34 600 123 456",
                                         "SOURCE": "meta_ads"}}
    assert (tags.method, tags.path) == ("POST", f"/3.0/lists/list1/members/{ANA_HASH}/tags")
    assert tags.json == {"tags": [{"name": "curso-a1", "status": "active"}, {"name": "meta", "status": "active"}]}
    member = fake.member("list1", "ana@example.com")
    assert member["status"] == "subscribed" and [t["name"] for t in member["tags"]] == ["curso-a1", "meta"]


def test_api_key_is_the_basic_auth_password(fake, integration):
    integration.upsert_contact(ANA)
    scheme, _, credentials = fake.requests[0].headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(credentials).decode().endswith(":" + KEY)


def test_upsert_twice_keeps_one_member_and_updates_it(fake, integration):
    integration.upsert_contact(ANA)
    integration.upsert_contact(Contact(email="ana@example.com", first_name="Anabel", tags=("curso-a1",)))
    assert list(fake.members["list1"]) == [ANA_HASH]
    member = fake.member("list1", "ana@example.com")
    assert member["merge_fields"]["FNAME"] == "Anabel" and member["merge_fields"]["LNAME"] == "García"
    assert member["tags_count"] == 2


def test_no_tags_means_no_tags_call(fake, integration):
    integration.upsert_contact(Contact(email="luis@example.com"))
    assert [r.method for r in fake.requests] == ["PUT"]
    assert fake.member("list1", "luis@example.com")["merge_fields"]["FNAME"] == ""


@pytest.mark.parametrize("title", ["Member In Compliance State", "Forgotten Email Not Subscribed", "Member Exists",
                                   "Resource Not Found", "Forbidden"])
def test_documented_4xx_titles_are_permanent(fake, integration, title):
    fake.fail_with(title)
    with pytest.raises(PermanentError, match=title) as error:
        integration.upsert_contact(ANA)
    assert not isinstance(error.value, TransientError)
    assert "ana@example.com" not in str(error.value)  # the fake's detail names the address; we mask it


def test_invalid_resource_is_permanent_and_names_the_fields(fake, integration):
    fake.fail_with("Invalid Resource")
    with pytest.raises(PermanentError, match=r"HTTP 400 Invalid Resource: .*\(LTV: Please enter a number\)"):
        integration.upsert_contact(ANA)


def test_forgotten_email_at_the_fake_is_permanent(fake, integration):
    fake.forget("ana@example.com")
    with pytest.raises(PermanentError, match="Forgotten Email Not Subscribed"):
        integration.upsert_contact(ANA)
    assert fake.members["list1"] == {}


def test_unknown_list_is_permanent(fake, settings_for):
    other = Mailchimp(settings_for(mailchimp_api_key=KEY, mailchimp_list_id="nope", mailchimp_base_url=fake.base_url))
    with pytest.raises(PermanentError, match="HTTP 404 Resource Not Found"):
        other.upsert_contact(ANA)


def test_wrong_key_is_permanent_and_not_echoed(fake, settings_for):
    wrong = "fedcba9876543210fedcba9876543210-us21"
    other = Mailchimp(settings_for(mailchimp_api_key=wrong, mailchimp_list_id="list1",
                                   mailchimp_base_url=fake.base_url))
    with pytest.raises(PermanentError, match="HTTP 401 API Key Invalid") as error:
        other.upsert_contact(ANA)
    assert wrong not in str(error.value)


def test_malformed_key_is_permanent_before_any_request(fake, settings_for):
    other = Mailchimp(settings_for(mailchimp_api_key="not-a-key", mailchimp_list_id="list1",
                                   mailchimp_base_url=fake.base_url))
    with pytest.raises(PermanentError, match="MAILCHIMP_API_KEY is malformed") as error:
        other.upsert_contact(ANA)
    assert "not-a-key" not in str(error.value) and fake.requests == []


def test_invalid_email_is_permanent_before_any_request(fake, integration):
    with pytest.raises(PermanentError, match="rejected before sending"):
        integration.upsert_contact(Contact(email="ana-at-example"))
    assert fake.requests == []


def test_429_is_transient_with_retry_after(fake, integration):
    fake.fail_with("Too Many Requests", retry_after=7)
    with pytest.raises(TransientError, match="HTTP 429") as error:
        integration.upsert_contact(ANA)
    assert error.value.retry_after == 7


def test_429_without_retry_after_is_transient_with_default_backoff(fake, integration):
    fake.fail_with("Too Many Requests")
    with pytest.raises(TransientError) as error:
        integration.upsert_contact(ANA)
    assert error.value.retry_after is None


@pytest.mark.parametrize("title", ["Internal Server Error", "Compliance Related"])
def test_5xx_problems_are_transient(fake, integration, title):
    fake.fail_with(title)
    with pytest.raises(TransientError, match=title):
        integration.upsert_contact(ANA)


def test_5xx_without_json_is_transient(fake, integration):
    fake.fail_next(502, b"<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(TransientError, match="HTTP 502"):
        integration.upsert_contact(ANA)


def test_failing_tags_call_is_classified_too(fake, integration):
    fake.fail_next(200, {"id": ANA_HASH})  # the PUT succeeds…
    fake.fail_with("Resource Not Found")  # …and the tags call finds no member
    with pytest.raises(PermanentError, match="HTTP 404"):
        integration.upsert_contact(ANA)
    assert [r.method for r in fake.requests] == ["PUT", "POST"]


def test_timeout_is_transient(fake, settings_for):
    slow = Mailchimp(settings_for(mailchimp_api_key=KEY, mailchimp_list_id="list1", mailchimp_base_url=fake.base_url),
                     timeout=(1, 0.2))
    fake.fail_next(200, {}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        slow.upsert_contact(ANA)


def test_connection_refused_is_transient(settings_for):
    gone = Mailchimp(settings_for(mailchimp_api_key=KEY, mailchimp_list_id="list1",
                                  mailchimp_base_url=f"http://127.0.0.1:{free_port()}/3.0"))
    with pytest.raises(TransientError, match="cannot reach"):
        gone.upsert_contact(ANA)


def test_logs_show_requests_but_no_key_or_personal_data(fake, integration, caplog):
    caplog.set_level(logging.DEBUG)
    integration.upsert_contact(ANA)
    fake.fail_with("Member In Compliance State")
    with pytest.raises(PermanentError):
        integration.upsert_contact(ANA)
    lines = [r for r in caplog.records if r.name == "cep_automation.plugins.http.mailchimp"]
    assert [r.getMessage().split(" → ")[1].split()[0] for r in lines] == ["200", "204", "400"]
    for secret in (KEY, "Ana@Example.COM", "ana@example.com", "600 123 456", "García"):
        assert secret not in caplog.text


@pytest.mark.parametrize(("values", "base"), [
    ({"mailchimp_api_key": KEY}, "https://us21.api.mailchimp.com/3.0/"),
    ({"mailchimp_api_key": KEY, "mailchimp_server": "us6"}, "https://us6.api.mailchimp.com/3.0/"),
    ({"mailchimp_api_key": KEY, "mailchimp_base_url": "http://127.0.0.1:9/3.0"}, "http://127.0.0.1:9/3.0/"),
])
def test_base_url_from_server_or_key_suffix(settings_for, values, base):
    assert Mailchimp(settings_for(mailchimp_list_id="list1", **values)).base_url == base


def test_key_without_data_center_needs_mailchimp_server(settings_for):
    integration = Mailchimp(settings_for(mailchimp_api_key=KEY.split("-")[0], mailchimp_list_id="list1"))
    with pytest.raises(PermanentError, match="MAILCHIMP_SERVER"):
        integration.upsert_contact(ANA)


@pytest.mark.parametrize(("values", "missing"), [
    ({"mailchimp_api_key": None, "mailchimp_list_id": "list1"}, "MAILCHIMP_API_KEY"),
    ({"mailchimp_api_key": KEY, "mailchimp_list_id": None}, "MAILCHIMP_LIST_ID"),
])
def test_disabled_without_credentials_names_the_setting(settings_for, values, missing):
    integration = Mailchimp(settings_for(**values))
    assert not integration.enabled and missing in integration.disabled_reason()


def test_hook_registers_through_the_plugin_manager(fresh_plugins, settings_for):
    settings = settings_for(mailchimp_api_key=KEY, mailchimp_list_id="list1")
    fresh_plugins.register(mailchimp, name="mailchimp")
    found = collect_integrations(settings).get("email_marketing", "mailchimp")
    assert isinstance(found, Mailchimp) and found.enabled


def test_calls_share_the_accounts_connection_limit_across_threads(fake, settings_for, redis_client):
    # Given an account allowed 3 connections and a Mailchimp that takes 0.2 s to answer
    from concurrent.futures import ThreadPoolExecutor

    fake.latency_s = 0.2
    limited = Mailchimp(settings_for(mailchimp_api_key=KEY, mailchimp_list_id="list1",
                                     mailchimp_base_url=fake.base_url, mailchimp_max_connections=3))
    # When 12 leads are upserted at once
    contacts = [Contact(email=f"lead{n}@example.com") for n in range(12)]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(limited.upsert_contact, contacts))
    # Then every member is there, and never more than 3 requests were open at the same time
    assert len(fake.members["list1"]) == 12
    assert fake.max_in_flight <= 3
    assert redis_client.keys("*flow:running:mailchimp*") == [] or all(
        redis_client.zcard(k) == 0 for k in redis_client.keys("*flow:running:mailchimp*"))


def test_calls_go_on_one_kept_connection_per_thread(fake, integration):
    # Given a Mailchimp that keeps connections open, as the real API does
    fake.keep_alive = True
    # When two leads are upserted (four requests) and a tag is set
    integration.upsert_contact(ANA)
    integration.upsert_contact(Contact(email="luis@example.com", first_name="Luis", tags=("curso-b2",)))
    integration.tag_contact("ana@example.com", ["vip"])
    # Then every request came on the same connection (mailchimp3 alone opens one per request: a TLS handshake each)
    assert len(fake.requests) == 5
    assert len({request.client_port for request in fake.requests}) == 1


def test_a_forked_child_does_not_reuse_its_parents_connection(fake, integration, monkeypatch):
    fake.keep_alive = True
    integration.upsert_contact(ANA)
    parent_client = integration._client()
    # When the process id changes (a worker process forked after a call in the parent)
    monkeypatch.setattr(os, "getpid", lambda: -1)
    # Then the child builds its own client, on a connection of its own
    assert integration._client() is not parent_client
    integration.tag_contact("ana@example.com", ["vip"])
    assert fake.requests[-1].client_port != fake.requests[0].client_port
