"""Redis clients for any ``REDIS_URL``, the Sentinel form included (:mod:`cep_automation.sentinel_url`).

A Sentinel URL names the sentinels, not the primary: every client asks them where the primary is, and asks
again after a failover (redis-py's ``SentinelConnectionPool``), so the broker, our own keys and the health
check follow a promoted replica without a restart.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.sentinel import Sentinel

from cep_automation.sentinel_url import is_sentinel, parse


def redis_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``: the Sentinel-watched primary for ``redis+sentinel://``, else ``Redis.from_url``."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    spec = parse(url)
    timeouts = {k: v for k, v in options.items() if k in ("socket_connect_timeout", "socket_timeout")}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # unannotated in redis-py
        list(spec.sentinels), sentinel_kwargs={**timeouts, "password": spec.sentinel_password})
    primary = sentinel.master_for(  # type: ignore[no-untyped-call]  # unannotated in redis-py
        spec.service, db=spec.db, password=spec.password, **options)
    return cast(redis.Redis, primary)


def broker_connection(url: str) -> dict[str, Any]:
    """Keyword arguments for Dramatiq's ``RedisBroker``: its own ``url``, or a Sentinel-backed ``client``."""
    return {"client": redis_from_url(url)} if is_sentinel(url) else {"url": url}
