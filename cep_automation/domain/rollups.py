"""Lead rollups: counts of leads per period by course, campus and campaign, for dashboards (and, split by
campus, for the advisors' daily digest: :mod:`cep_automation.domain.campus_rollups`).

Writing is an upsert of every key plus removal of keys that no longer have leads, in one
transaction, so re-running a period yields exactly the same rows. Reading is a range scan
of the primary key (granularity, dimension, period_start, key_id).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cep_automation.domain import campus_rollups

GRANULARITIES = ("daily", "weekly", "monthly")
# Dimension → the key expression over ``leads l LEFT JOIN course_runs cr``; 0 means "none".
DIMENSIONS = {
    "total": None,
    "course": "COALESCE(cr.course_id, 0)",
    "campus": "COALESCE(cr.campus_id, 0)",
    "campaign": "COALESCE(l.campaign_id, 0)",
}


def period(day: dt.date, granularity: str) -> tuple[dt.date, dt.date]:
    """The period containing ``day``: its first day and the day after its last (ISO weeks start Monday)."""
    if granularity == "daily":
        return day, day + dt.timedelta(days=1)
    if granularity == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    if granularity == "monthly":
        start = day.replace(day=1)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    raise ValueError(f"unknown granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")


@dataclass(frozen=True)
class RollupResult:
    """What one rollup wrote."""

    granularity: str
    period_start: dt.date
    period_end: dt.date
    leads: int
    rows: dict[str, int]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _fresh_counts(dimension: str) -> sql.Composed:
    expr = DIMENSIONS[dimension]
    key_expr = sql.SQL(expr) if expr else sql.SQL("0")
    group = sql.SQL(" GROUP BY 1") if expr else sql.SQL("")
    return sql.SQL(
        "SELECT {key} AS key_id, count(*) AS leads, count(l.consent_at) AS consented"
        " FROM leads l LEFT JOIN course_runs cr ON cr.id = l.course_run_id"
        " WHERE l.created_at >= %(start)s AND l.created_at < %(end)s{group}"
    ).format(key=key_expr, group=group)


def _write_dimension(conn: psycopg.Connection[Any], granularity: str, dimension: str,
                     start: dt.date, end: dt.date) -> int:
    params = {"g": granularity, "d": dimension, "p": start, "start": _midnight(start), "end": _midnight(end)}
    upsert = sql.SQL(
        "INSERT INTO lead_rollups (granularity, dimension, period_start, key_id, leads, consented)"
        " SELECT %(g)s, %(d)s, %(p)s, key_id, leads, consented FROM ({fresh}) AS fresh"
        " ON CONFLICT (granularity, dimension, period_start, key_id)"
        " DO UPDATE SET leads = EXCLUDED.leads, consented = EXCLUDED.consented, updated_at = now()"
        " RETURNING key_id"
    ).format(fresh=_fresh_counts(dimension))
    keys = [row["key_id"] if isinstance(row, dict) else row[0] for row in conn.execute(upsert, params).fetchall()]
    conn.execute(
        "DELETE FROM lead_rollups WHERE granularity = %(g)s AND dimension = %(d)s"
        " AND period_start = %(p)s AND NOT (key_id = ANY(%(keys)s))",
        {**params, "keys": keys},
    )
    return len(keys)


def rollup(conn: psycopg.Connection[Any], day: dt.date, granularity: str) -> RollupResult:
    """Recompute every dimension of the period containing ``day``, atomically."""
    start, end = period(day, granularity)
    with conn.transaction():
        rows = {dimension: _write_dimension(conn, granularity, dimension, start, end) for dimension in DIMENSIONS}
        campus_rollups.write(conn, granularity, start, (_midnight(start), _midnight(end)))  # advisors' figures
        total = conn.execute(
            "SELECT leads FROM lead_rollups WHERE granularity = %s AND dimension = 'total'"
            " AND period_start = %s AND key_id = 0",
            (granularity, start),
        ).fetchone()
    leads = (total["leads"] if isinstance(total, dict) else total[0]) if total else 0
    return RollupResult(granularity, start, end, leads, rows)


def read_rollups(conn: psycopg.Connection[Any], granularity: str, dimension: str,
                 first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """Rollup rows of one granularity and dimension whose period starts between ``first`` and ``last``."""
    if granularity not in GRANULARITIES or dimension not in DIMENSIONS:
        raise ValueError(f"unknown granularity {granularity!r} or dimension {dimension!r}")
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cursor.execute(
        "SELECT period_start, key_id, leads, consented FROM lead_rollups"
        " WHERE granularity = %s AND dimension = %s AND period_start BETWEEN %s AND %s"
        " ORDER BY period_start, key_id",
        (granularity, dimension, first, last),
    ).fetchall()
