"""``stats.rollup``: aggregate leads by day, week and month for the dashboards."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from cep_automation.db import connection
from cep_automation.domain import rollups
from cep_automation.errors import PayloadError
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import current_job
from cep_automation.runtime.payload import field_errors


class StatsRollupPayload(BaseModel):
    """``date`` defaults to yesterday (UTC); no ``granularity`` means all three."""

    date: dt.date | None = None
    granularity: str | None = None

    @field_validator("granularity")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in rollups.GRANULARITIES:
            raise ValueError(f"must be one of {', '.join(rollups.GRANULARITIES)}")
        return value


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def parse_payload(**payload: Any) -> StatsRollupPayload:
    try:
        return StatsRollupPayload(**payload)
    except ValidationError as exc:
        raise PayloadError("stats.rollup", field_errors(exc)) from None


@job("stats.rollup", schema=StatsRollupPayload)
def stats_rollup(date: str | None = None, granularity: str | None = None) -> dict[str, Any]:
    """Roll up the period(s) containing ``date``; re-running gives the same rows."""
    payload = parse_payload(date=date, granularity=granularity)
    day = payload.date or yesterday()
    granularities = [payload.granularity] if payload.granularity else list(rollups.GRANULARITIES)
    handle = current_job()
    handle.progress(10)
    results = {}
    with connection() as conn:
        for index, name in enumerate(granularities, start=1):
            result = rollups.rollup(conn, day, name)
            results[name] = {
                "period_start": result.period_start.isoformat(),
                "leads": result.leads,
                "rows": result.rows,
            }
            handle.log(f"{name} rollup from {result.period_start}: {result.leads} leads, rows {result.rows}")
            handle.progress(10 + 90 * index // len(granularities))
    return {"date": day.isoformat(), "rollups": results}
