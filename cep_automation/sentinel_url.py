"""The Sentinel form of ``REDIS_URL``: ``redis+sentinel://[:password@]host:port[,host:port…]/service_name[/db]``.

Parsed here, in the foundation, so that settings reject a malformed one at start-up, saying what is wrong;
:mod:`cep_automation.db.sentinel` makes the clients. ``?sentinel_password=…`` is for sentinels that want their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SCHEME = "redis+sentinel://"
EXAMPLE = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"


@dataclass(frozen=True)
class SentinelURL:
    """A parsed Sentinel URL: where the sentinels are, which primary they watch, and its database."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME)


def parse(url: str) -> SentinelURL:
    """Parse ``url``; a ValueError says what is wrong in words, with an example."""
    rest, _, query = url.removeprefix(SCHEME).partition("?")
    userinfo, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts:
        raise ValueError(f"names no sentinel host:port (e.g. {EXAMPLE})")
    if not parts or len(parts) > 2:
        raise ValueError(f"needs the service name after the hosts, then optionally a db number (e.g. {EXAMPLE})")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"database {parts[1]!r} is not a number (e.g. {EXAMPLE})")
    password = (unquote(userinfo.partition(":")[2]) or None) if userinfo else None
    sentinel_password = parse_qs(query).get("sentinel_password", [None])[0]
    return SentinelURL(tuple(_host(h) for h in hosts.split(",")), parts[0], int(parts[1]) if len(parts) == 2 else 0,
                       password, sentinel_password)


def _host(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel {text!r} is not host:port (e.g. {EXAMPLE})")
    return host.strip("[]"), int(port)
