"""What paid calls cost, one row per call in PostgreSQL (``spend``), and the totals the caps and reports read.

Rows are written as each provider answers, so a day's totals are exact after any restart, on any host. The
caps read today's totals with one indexed query (a language-model call takes seconds and costs money: a
sum over today's rows is nothing beside it), so there is no second counter to drift from the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cep_automation.db import connection

LLM = "llm"  # the kind of language-model calls; the LLM caps add up rows of this kind


@dataclass(frozen=True)
class Charge:
    """One paid call: who was paid (``provider``), for what (``item``: a model, a priced item) and how much."""

    kind: str
    provider: str
    item: str
    cost_eur: float = 0.0
    tokens: int = 0
    units: float = 0.0
    cost_usd: float | None = None


@dataclass(frozen=True)
class Totals:
    """A day's spend of a kind or a provider."""

    cost_eur: float = 0.0
    tokens: int = 0
    units: float = 0.0
    calls: int = 0


def record(charge: Charge, day: dt.date, *, job: str | None = None, message_id: str | None = None) -> None:
    """Store one call's cost under ``day`` (the caps' day: Europe/Madrid)."""
    with connection() as conn:
        conn.execute(
            "INSERT INTO spend (day, kind, provider, item, tokens, units, cost_eur, cost_usd, job, message_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (day, charge.kind, charge.provider, charge.item, charge.tokens, charge.units, charge.cost_eur,
             charge.cost_usd, job, message_id))


def day_totals(day: dt.date, *, kind: str | None = None, provider: str | None = None) -> Totals:
    """``day``'s totals of one kind (every provider of it) or of one provider."""
    column, value = ("kind", kind) if kind is not None else ("provider", provider)
    with connection() as conn:
        row = conn.execute(  # the column name is one of two constants above
            "SELECT coalesce(sum(cost_eur), 0) AS eur, coalesce(sum(tokens), 0) AS tokens,"
            f" coalesce(sum(units), 0) AS units, count(*) AS calls FROM spend WHERE day = %s AND {column} = %s",
            (day, value)).fetchone()
    assert row is not None  # an aggregate always answers one row
    return Totals(float(row["eur"]), int(row["tokens"]), float(row["units"]), int(row["calls"]))


def by_provider_and_item(first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """Spend from ``first`` to ``last`` (inclusive) per kind, provider and item, largest first."""
    with connection() as conn:
        rows = conn.execute(
            "SELECT kind, provider, item, count(*) AS calls, sum(tokens) AS tokens, sum(units) AS units,"
            " sum(cost_eur) AS cost_eur, sum(cost_usd) AS cost_usd FROM spend WHERE day BETWEEN %s AND %s"
            " GROUP BY kind, provider, item ORDER BY sum(cost_eur) DESC, sum(tokens) DESC, provider, item",
            (first, last)).fetchall()
    return [{**row, "tokens": int(row["tokens"]), "units": _number(row["units"]),
             "cost_eur": _number(row["cost_eur"]), "cost_usd": _number(row["cost_usd"])} for row in rows]


def _number(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value), 6)
