"""The Sentinel form of REDIS_URL: parsed into sentinels, service and db; a malformed one says what is wrong."""

from __future__ import annotations

import pytest

from cep_automation.errors import SettingsError
from cep_automation.sentinel_url import SentinelURL, parse
from cep_automation.settings import load_settings


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db():
    assert parse("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/mymaster/2?sentinel_password=pw") == \
        SentinelURL((("10.0.0.1", 26379), ("::1", 26380)), "mymaster", 2, "s@cret", "pw")
    assert parse("redis+sentinel://h:26379/mymaster") == SentinelURL((("h", 26379),), "mymaster")


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel://h:26379", "needs the service name after the hosts"),
    ("redis+sentinel:///mymaster", "names no sentinel host:port"),
    ("redis+sentinel://h/mymaster", "sentinel 'h' is not host:port"),
    ("redis+sentinel://h:99999/mymaster", "sentinel 'h:99999' is not host:port"),
    ("redis+sentinel://h:26379/mymaster/zero", "database 'zero' is not a number"),
])
def test_a_malformed_sentinel_url_stops_start_up_saying_what_is_wrong(url, says):
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, redis_url=url, database_url="postgresql://localhost/cep")
    assert f"REDIS_URL is invalid ({says}" in str(error.value)
    assert "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0" in str(error.value)


def test_the_broker_url_may_be_a_sentinel_url_too():
    settings = load_settings(_env_file=None, redis_url="redis://localhost:6379/0", database_url="postgresql://x/y",
                             broker_url="redis+sentinel://h:26379/mymaster")
    assert settings.effective_broker_url == "redis+sentinel://h:26379/mymaster"
    with pytest.raises(SettingsError, match="BROKER_URL is invalid"):
        load_settings(_env_file=None, redis_url="redis://localhost", database_url="postgresql://x/y",
                      broker_url="redis+sentinel://h:26379")
