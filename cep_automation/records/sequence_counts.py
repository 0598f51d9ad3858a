"""Sequence counters in Redis: entries, exits by cause, steps by outcome.

Entries and exits happen in every kind of process (a worker, the HTTP service, the CLI), so they are counted in
one Redis hash (``seq:counts``, HINCRBY: atomic across hosts) and served at scrape time as
``sequence_entries_total{sequence}``, ``sequence_exits_total{sequence,cause}`` and
``sequence_steps_total{sequence,status}``. Counting never fails what it counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from cep_automation.db.redis_client import get_redis, key

logger = logging.getLogger("cep_automation.records.sequence_counts")
SEP = "|"


def counts_key() -> str:
    return key("seq", "counts")


def count(kind: str, *labels: str, by: int = 1) -> None:
    count_many([(kind, *labels)], by=by)


def count_many(items: Iterable[tuple[str, ...]], by: int = 1) -> None:
    tally = Counter(SEP.join(item) for item in items)
    if not tally:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        for field, n in tally.items():
            pipe.hincrby(counts_key(), field, n * by)
        pipe.execute()
    except Exception as exc:  # a metric must not fail an exit or a send
        logger.warning("sequence counters not updated: %s", exc)


def read() -> dict[tuple[str, ...], int]:
    """(kind, *labels) → count, e.g. ``("exits", "nurture", "enrolled"): 3``."""
    raw = get_redis().hgetall(counts_key())
    return {tuple(_text(field).split(SEP)): int(value) for field, value in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
