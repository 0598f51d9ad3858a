"""A worker pool's /metrics: loopback by default, and the API token when one is set (issue 17, part 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import API_TOKEN, get

pytestmark = pytest.mark.slow


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a listening TCP socket on ``port``, from the kernel's own table."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_a_pools_metrics_listen_on_loopback_and_want_the_token(deploy_env, live):
    # Given a pool with the defaults and an API token
    pool = live.pool(deploy_env())
    url = f"http://127.0.0.1:{pool.port}/metrics"
    pool.wait_answers(url)
    # Then it listens on 127.0.0.1 only
    assert listening_addresses(pool.port) == {"127.0.0.1"}
    # And a scrape without the token, or with a wrong one, is refused; with it, the metrics come
    assert get(url)[0] == 401
    assert get(url, "wrong-token")[0] == 401
    status, text = get(url, API_TOKEN)
    assert status == 200 and "queue_length{" in text


def test_a_pool_may_listen_on_every_interface(deploy_env, live):
    # Given a pool told to listen on 0.0.0.0, without a token
    env = deploy_env(CEP_METRICS_HOST="0.0.0.0")
    env.pop("CEP_API_TOKEN")
    pool = live.pool(env)
    url = f"http://127.0.0.1:{pool.port}/metrics"
    pool.wait_answers(url)
    # Then it listens on every interface, serves without a token, and warns that it does
    assert listening_addresses(pool.port) == {"0.0.0.0"}
    assert get(url)[0] == 200
    assert "without a token: set CEP_API_TOKEN" in pool.log
