"""The WhatsApp integration against the fake Cloud API: bodies, every documented error code, the global
rate limit shared through Redis (in one process and across two), timeouts, and secrecy in logs."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from cep_automation.errors import PermanentError, Postponed, TransientError
from cep_automation.plugins import whatsapp
from cep_automation.plugins.whatsapp import WhatsApp
from cep_automation.redact import mask_phone
from cep_automation.testing.fake_whatsapp import TITLES, FakeWhatsApp

TOKEN = "EAAGsecretWhatsAppToken123"
PHONE_ID = "106540352242922"
PHONE = "+34 600 123 456"

TRANSIENT = {4: 60, 80007: 60, 130429: 3, 131056: 60, 131000: None, 131016: None, 1: None, 2: None}
PERMANENT = [0, 190, 10, 200, 250, 299, 100, 131008, 131009, 33, 132000, 132001, 132012, 132015, 132016,
             131030, 133010, 368, 131031, 131026, 131047, 131048, 131049]


@pytest.fixture
def fake():
    with FakeWhatsApp(TOKEN, PHONE_ID) as server:
        yield server


@pytest.fixture
def make_whatsapp(fake, settings_for, redis_client):
    """A WhatsApp integration on the fake; the Redis namespace (limiter counters) is emptied around each test."""

    def make(rate_limit=1000, **kwargs):
        settings = settings_for(whatsapp_phone_number_id=PHONE_ID, whatsapp_access_token=TOKEN,
                                whatsapp_base_url=fake.base_url, whatsapp_rate_limit=rate_limit)
        return WhatsApp(settings, **kwargs)

    return make


def test_send_template_posts_the_documented_body_and_returns_the_wamid(fake, make_whatsapp):
    wamid = make_whatsapp().send_template(PHONE, "bienvenida", "es", ["Ana", "Inglés A1"])
    (request,) = fake.requests
    assert request.path == f"/v23.0/{PHONE_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "34600123456", "type": "template",
        "template": {"name": "bienvenida", "language": {"code": "es"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Inglés A1"}]}]},
    }
    assert wamid.startswith("wamid.") and fake.messages[0]["id"] == wamid


def test_send_text(fake, make_whatsapp):
    wamid = make_whatsapp().send_text(PHONE, "Hola Ana")
    assert fake.messages == [{"id": wamid, "to": "34600123456", "type": "text", "text": "Hola Ana"}]
    assert fake.requests[0].json["text"] == {"body": "Hola Ana", "preview_url": False}


def test_template_checks_of_the_fake_reach_us_as_permanent_errors(make_whatsapp, settings_for):
    with FakeWhatsApp(TOKEN, PHONE_ID, templates={("bienvenida", "es"): 1}) as strict:
        settings = settings_for(whatsapp_phone_number_id=PHONE_ID, whatsapp_access_token=TOKEN,
                                whatsapp_base_url=strict.base_url)
        assert WhatsApp(settings).send_template(PHONE, "bienvenida", "es", ["Ana"]).startswith("wamid.")
        with pytest.raises(PermanentError, match="132001"):
            WhatsApp(settings).send_template(PHONE, "bienvenida", "en", ["Ana"])
        with pytest.raises(PermanentError, match="132000"):
            WhatsApp(settings).send_template(PHONE, "bienvenida", "es", [])


@pytest.mark.parametrize("code", sorted(TRANSIENT))
def test_transient_codes_use_their_backoff(code, fake, make_whatsapp):
    fake.fail_with_code(code)
    with pytest.raises(TransientError) as error:
        make_whatsapp().send_template(PHONE, "bienvenida", "es", ["Ana"])
    assert error.value.retry_after == TRANSIENT[code]
    assert f"error {code} {TITLES[code]}" in str(error.value)


@pytest.mark.parametrize("status", [400, 429, 403])
@pytest.mark.parametrize("code", [4, 80007])
def test_call_rate_limit_is_transient_under_any_http_status(code, status, fake, make_whatsapp):
    fake.fail_with_code(code, http_status=status)
    with pytest.raises(TransientError):
        make_whatsapp().send_text(PHONE, "Hola")


def test_retry_after_header_wins_over_the_default_backoff(fake, make_whatsapp):
    fake.fail_with_code(130429, headers={"Retry-After": "12"})
    with pytest.raises(TransientError) as error:
        make_whatsapp().send_text(PHONE, "Hola")
    assert error.value.retry_after == 12 and error.value.delay == 12000


@pytest.mark.parametrize("code", PERMANENT)
def test_permanent_codes_name_code_and_title_never_the_token(code, fake, make_whatsapp):
    fake.fail_with_code(code, title=TITLES.get(code, "API Permission"))
    with pytest.raises(PermanentError) as error:
        make_whatsapp().send_template(PHONE, "bienvenida", "es", ["Ana"])
    text = str(error.value)
    assert f"error {code} " in text and TITLES.get(code, "API Permission") in text
    assert "fbtrace_id A" in text and TOKEN not in text and "600123456" not in text


def test_permanent_code_wins_over_a_5xx_status(fake, make_whatsapp):
    fake.fail_with_code(131026, http_status=500)
    with pytest.raises(PermanentError, match="cannot receive WhatsApp"):
        make_whatsapp().send_text(PHONE, "Hola")


def test_undocumented_errors_fall_back_to_the_status(fake, make_whatsapp):
    fake.fail_next(502, b"<html>Bad Gateway</html>")
    with pytest.raises(TransientError, match="HTTP 502"):
        make_whatsapp().send_text(PHONE, "Hola")
    fake.fail_with_code(999999, http_status=400, title="Something new")
    with pytest.raises(PermanentError, match="999999 Something new"):
        make_whatsapp().send_text(PHONE, "Hola")


def test_a_wrong_token_is_error_190(settings_for, fake, redis_client):
    settings = settings_for(whatsapp_phone_number_id=PHONE_ID, whatsapp_access_token="EAAGother",
                            whatsapp_base_url=fake.base_url)
    with pytest.raises(PermanentError, match="190.*WHATSAPP_ACCESS_TOKEN is invalid or expired"):
        WhatsApp(settings).send_text(PHONE, "Hola")


def test_a_number_without_enough_digits_is_refused_before_sending(fake, make_whatsapp):
    with pytest.raises(PermanentError, match="not a phone number"):
        make_whatsapp().send_text("600 12", "Hola")
    assert fake.requests == []


def test_read_timeout_is_transient(fake, make_whatsapp):
    fake.fail_next(200, {}, delay_s=1.0)
    with pytest.raises(TransientError, match="timed out"):
        make_whatsapp(timeout=(1, 0.2)).send_text(PHONE, "Hola")


@pytest.mark.parametrize("missing", ["whatsapp_phone_number_id", "whatsapp_access_token"])
def test_disabled_without_credentials_names_the_setting(missing, settings_for):
    values = {"whatsapp_phone_number_id": PHONE_ID, "whatsapp_access_token": TOKEN}
    del values[missing]
    integration = WhatsApp(settings_for(**values))
    assert not integration.enabled and missing.upper() in integration.disabled_reason()


def test_register_integrations_registers_one_whatsapp(settings_for):
    found = []
    whatsapp.register_integrations(register=found.append, settings=settings_for())
    assert [(i.kind, i.name) for i in found] == [("messaging", "whatsapp")]


def test_logs_mask_the_phone_and_never_show_the_token(fake, make_whatsapp, caplog):
    caplog.set_level(logging.DEBUG)
    make_whatsapp().send_template(PHONE, "bienvenida", "es", ["Ana"])
    fake.fail_with_code(131030, error_data={"messaging_product": "whatsapp",
                                            "details": "Recipient +34600123456 not in allowed list"})
    with pytest.raises(PermanentError) as error:
        make_whatsapp().send_text(PHONE, "Hola")
    assert "accepted as wamid." in caplog.text and mask_phone(PHONE) in caplog.text
    for text in (caplog.text, str(error.value)):
        assert TOKEN not in text and "600123456" not in text and "600 123 456" not in text


def test_limit_admits_its_burst_then_postpones_the_job_saying_when(fake, make_whatsapp):
    # 5 per 60 s, all 5 at once: one frees every 12 s, far longer than the test runs, so the counts are exact.
    integration = make_whatsapp(rate_limit=5, rate_window_s=60, rate_wait_s=0, rate_burst=5)
    sent = [integration.send_text(PHONE, f"n{n}") for n in range(5)]
    with pytest.raises(Postponed, match=r"whatsapp .*over its limit \(5 per 60 s\)") as error:
        integration.send_text(PHONE, "sixth")
    assert len(set(sent)) == 5 and len(fake.messages) == 5
    assert 0 < error.value.retry_after <= 12  # the next slot, not a guess


def test_the_limit_is_per_phone_number(fake, make_whatsapp, settings_for):
    integration = make_whatsapp(rate_limit=1, rate_window_s=60, rate_wait_s=0)
    integration.send_text(PHONE, "first")
    with pytest.raises(Postponed):
        integration.send_text(PHONE, "second")
    other = WhatsApp(settings_for(whatsapp_phone_number_id="999000", whatsapp_access_token=TOKEN,
                                  whatsapp_base_url=fake.base_url, whatsapp_rate_limit=1),
                     rate_window_s=60, rate_wait_s=0)
    with pytest.raises(PermanentError):  # the fake knows one number: the other number's send got past its limit
        other.send_text(PHONE, "from another number")


def test_a_send_waits_for_the_next_slot_instead_of_failing(fake, make_whatsapp):
    # One message per second and up to 3 s of waiting: the second send waits for the next slot.
    integration = make_whatsapp(rate_limit=1, rate_window_s=1, rate_wait_s=3)
    integration.send_text(PHONE, "first")
    integration.send_text(PHONE, "second")
    assert [m["text"] for m in fake.messages] == ["first", "second"]


CHILD = """
import sys
from cep_automation.errors import Postponed
from cep_automation.plugins.whatsapp import WhatsApp
from cep_automation.settings import load_settings

settings = load_settings(_env_file=None, whatsapp_phone_number_id=sys.argv[1], whatsapp_access_token=sys.argv[2],
                         whatsapp_base_url=sys.argv[3], whatsapp_rate_limit=5)
integration = WhatsApp(settings, rate_window_s=60, rate_wait_s=0, rate_burst=5)
sent = 0
for n in range(5):
    try:
        integration.send_text("+34600000%03d" % n, "hola")
        sent += 1
    except Postponed:
        pass
print(sent)
"""


def test_two_processes_share_one_limit_through_redis(fake, process_env, redis_client):
    # Given two worker-like processes that each try 5 sends under a shared limit of 5 per window
    argv = [sys.executable, "-c", CHILD, PHONE_ID, TOKEN, fake.base_url]
    children = [subprocess.Popen(argv, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    # When both have finished
    results = [child.communicate(timeout=120) for child in children]
    # Then exactly 5 messages went out between them
    assert all(child.returncode == 0 for child in children), [err for _, err in results]
    assert sum(int(out) for out, _ in results) == 5
    assert len(fake.messages) == 5
