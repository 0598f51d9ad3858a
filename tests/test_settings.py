"""Settings: one message listing every problem, with how to fix it."""

from __future__ import annotations

import pytest

from cep_automation.errors import SettingsError
from cep_automation.settings import load_settings

GOOD = {"redis_url": "redis://127.0.0.1:6379/0", "database_url": "postgresql://u@h/db"}


def test_missing_and_invalid_settings_are_listed_together(monkeypatch):
    for name in ("REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, broker_url="http://nope", cep_metrics_port="many", crm_enabled="perhaps")
    message = str(error.value)
    assert "5 setting problem(s)" in message
    for expected in ("REDIS_URL is not set", "DATABASE_URL is not set", "BROKER_URL is invalid",
                     "CEP_METRICS_PORT is invalid", "CRM_ENABLED is invalid", "expected true or false",
                     ".env.example"):
        assert expected in message


def test_wrong_scheme_says_which_schemes_work():
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, redis_url="http://127.0.0.1:6379", database_url="mysql://x")
    assert "REDIS_URL is invalid (must start with one of redis://, rediss://, unix://, redis+sentinel://)" in str(
        error.value)
    assert "DATABASE_URL is invalid (must start with one of postgresql://, postgres://)" in str(error.value)


def test_env_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_ENABLED", raising=False)
    env = tmp_path / ".env"
    env.write_text("CRM_ENABLED=true\nCEP_DISABLED_PLUGINS= a, b ,,\n")
    settings = load_settings(_env_file=env, **GOOD)
    assert settings.crm_enabled is True
    assert settings.disabled_plugins == {"a", "b"}


def test_broker_url_defaults_to_redis_url():
    assert load_settings(_env_file=None, broker_url="", **GOOD).effective_broker_url == GOOD["redis_url"]
    amqp = load_settings(_env_file=None, broker_url="amqp://guest:guest@127.0.0.1:5672/", **GOOD)
    assert amqp.effective_broker_url.startswith("amqp://")


def test_rabbitmq_without_redis_says_what_redis_is_still_needed_for(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, broker_url="amqp://guest:guest@127.0.0.1:5672/", database_url="postgresql://u@h/db")
    message = str(error.value)
    assert "REDIS_URL is not set: with BROKER_URL=amqp://… RabbitMQ carries the queues, but idempotency keys" in message
    assert "flow-control limits, job state" in message and "set REDIS_URL too" in message


def test_secrets_do_not_print():
    settings = load_settings(_env_file=None, whatsapp_access_token="EAAGtopsecret", **GOOD)
    assert "EAAGtopsecret" not in repr(settings) and "EAAGtopsecret" not in str(settings.model_dump())


def test_marketing_email_is_one_address_or_unset():
    assert load_settings(_env_file=None, cep_marketing_email=" mk@cep.es ", **GOOD).cep_marketing_email == "mk@cep.es"
    assert load_settings(_env_file=None, cep_marketing_email="", **GOOD).cep_marketing_email is None
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, cep_marketing_email="a@cep.es, b@cep.es", **GOOD)
    assert "CEP_MARKETING_EMAIL is invalid (not an email address)" in str(error.value)


def test_env_example_documents_every_setting():
    from pathlib import Path

    from cep_automation.settings import Settings

    text = (Path(__file__).parents[1] / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines() if "=" in line}
    assert {name.upper() for name in Settings.model_fields} <= documented
