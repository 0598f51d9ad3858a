"""Lead rollups split by campus: counts per (campus, course) and per (campus, campaign).

``lead_rollups`` keeps each dimension on its own, and a course or a campaign spans campuses, so a campus
advisor's figures per course and per campaign cannot be read from it. :func:`write` is called by
:func:`cep_automation.domain.rollups.rollup` inside its transaction: re-running a period yields exactly the
same rows here too. Reading is a range scan of the primary key (granularity, period_start, campus_id, …).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

# Dimension → its key over ``leads l LEFT JOIN course_runs cr``; 0 means "none" (campus 0: telemático).
DIMENSIONS = {"course": "COALESCE(cr.course_id, 0)", "campaign": "COALESCE(l.campaign_id, 0)"}
CAMPUS = "COALESCE(cr.campus_id, 0)"


def _write_dimension(conn: psycopg.Connection[Any], granularity: str, dimension: str, start: dt.date,
                     bounds: tuple[dt.datetime, dt.datetime]) -> int:
    params = {"g": granularity, "d": dimension, "p": start, "start": bounds[0], "end": bounds[1]}
    upsert = sql.SQL(
        "INSERT INTO lead_rollups_by_campus (granularity, period_start, campus_id, dimension, key_id, leads, consented)"
        " SELECT %(g)s, %(p)s, {campus}, %(d)s, {key}, count(*), count(l.consent_at)"
        " FROM leads l LEFT JOIN course_runs cr ON cr.id = l.course_run_id"
        " WHERE l.created_at >= %(start)s AND l.created_at < %(end)s GROUP BY 3, 5"
        " ON CONFLICT (granularity, period_start, campus_id, dimension, key_id)"
        " DO UPDATE SET leads = EXCLUDED.leads, consented = EXCLUDED.consented, updated_at = now()"
        " RETURNING campus_id, key_id"
    ).format(campus=sql.SQL(CAMPUS), key=sql.SQL(DIMENSIONS[dimension]))
    kept = conn.execute(upsert, params).fetchall()
    pairs = [f"{_at(row, 0, 'campus_id')}:{_at(row, 1, 'key_id')}" for row in kept]
    conn.execute(
        "DELETE FROM lead_rollups_by_campus WHERE granularity = %(g)s AND period_start = %(p)s"
        " AND dimension = %(d)s AND NOT (campus_id::text || ':' || key_id::text = ANY(%(pairs)s))",
        {**params, "pairs": pairs},
    )
    return len(kept)


def _at(row: Any, index: int, name: str) -> Any:
    return row[name] if isinstance(row, dict) else row[index]


def write(conn: psycopg.Connection[Any], granularity: str, start: dt.date,
          bounds: tuple[dt.datetime, dt.datetime]) -> dict[str, int]:
    """Recompute the period starting ``start`` (leads created within ``bounds``); rows written per dimension.
    Call it inside the rollup's transaction."""
    return {f"campus_{dimension}": _write_dimension(conn, granularity, dimension, start, bounds)
            for dimension in DIMENSIONS}


def read_period(conn: psycopg.Connection[Any], granularity: str, start: dt.date,
                campus_id: int | None = None) -> list[dict[str, Any]]:
    """Rows of one period (every campus, or one): campus_id, dimension, key_id, leads, consented."""
    cursor = conn.cursor(row_factory=dict_row)
    return cursor.execute(
        "SELECT campus_id, dimension, key_id, leads, consented FROM lead_rollups_by_campus"
        " WHERE granularity = %s AND period_start = %s AND (%s::bigint IS NULL OR campus_id = %s)"
        " ORDER BY campus_id, dimension, key_id",
        (granularity, start, campus_id, campus_id),
    ).fetchall()


def has_period(conn: psycopg.Connection[Any], granularity: str, start: dt.date) -> bool:
    """Whether the period has any row (one probe of the primary key)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM lead_rollups_by_campus WHERE granularity = %s"
                       " AND period_start = %s) AS found", (granularity, start)).fetchone()
    return bool(_at(row, 0, "found"))
