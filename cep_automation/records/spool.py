"""One Redis list per record type that keeps rows while PostgreSQL is down, drained in order once it is back.

The audit writer and the dead-letter middleware both use it: a row is pushed as JSON, and
:meth:`Spool.drain` writes the oldest first and removes each only after it was written, so a crash
during a drain repeats a write (the writers upsert or tolerate it) and never loses one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cep_automation.db.redis_client import get_redis, key


class Spool:
    """The spool ``{namespace}:<name>:spool``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def key(self) -> str:
        return key(self.name, "spool")

    def push(self, *rows: dict[str, Any]) -> None:
        """Keep rows for later, in order."""
        if rows:
            get_redis().rpush(self.key, *(json.dumps(row, default=str) for row in rows))

    def drain(self, write: Callable[[dict[str, Any]], None], limit: int = 1000) -> int:
        """Write up to ``limit`` rows, oldest first; returns how many were written."""
        client = get_redis()
        written = 0
        while written < limit:
            raw = client.lindex(self.key, 0)
            if raw is None:
                break
            write(json.loads(raw))
            client.lpop(self.key)  # removed only once written
            written += 1
        return written
