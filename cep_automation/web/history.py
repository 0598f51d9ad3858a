"""``/admin/history``: the queues over the last 24 hours or 7 days, drawn from ``queue_history``.

One range read of the primary key (resolution, period_start, queue), grouped into points of 15 minutes
(24 h) or an hour (7 days): depth at its peak, completions per minute over the minutes measured, the
wait percentiles (p50 weighted by the waits measured, p95 the highest), failed attempts as a share of
attempts, and jobs dead-lettered. A point without any snapshot is a gap in the line, not a zero.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cep_automation.db import connection
from cep_automation.records.broker_state import queue_names
from cep_automation.web.charts import Chart, line_chart, number
from cep_automation.web.dashboard import attempt
from cep_automation.web.templating import render

RANGES = {"24h": (dt.timedelta(hours=24), 900, "%H:%M"), "7d": (dt.timedelta(days=7), 3600, "%a %d %H:%M")}

POINTS = """
SELECT queue, to_timestamp(floor(extract(epoch FROM period_start) / %(step)s) * %(step)s) AS point,
       max(waiting + delayed) AS depth, sum(completed)::float / count(*) AS per_minute,
       sum(attempts) AS attempts, sum(failed) AS failed, sum(dead_lettered) AS dead_lettered,
       sum(wait_p50_ms::bigint * waits) / NULLIF(sum(waits) FILTER (WHERE wait_p50_ms IS NOT NULL), 0) AS p50,
       max(wait_p95_ms) AS p95
FROM queue_history WHERE resolution = 'minute' AND period_start >= %(since)s AND period_start < %(until)s
GROUP BY 1, 2
"""


def points(span: str, now: dt.datetime) -> tuple[list[dt.datetime], dict[tuple[str, dt.datetime], dict[str, Any]]]:
    """The points of the range ending at ``now`` and the figures found for each (queue, point)."""
    length, step, _ = RANGES[span]
    last = dt.datetime.fromtimestamp(now.timestamp() // step * step, dt.UTC)
    times = [last - dt.timedelta(seconds=step * i) for i in reversed(range(int(length.total_seconds()) // step))]
    with connection() as conn:
        rows = conn.execute(POINTS, {"step": step, "since": times[0], "until": last + dt.timedelta(seconds=step)})
        found = {(row["queue"], row["point"]): row for row in rows}
    return times, found


def charts(span: str, now: dt.datetime) -> list[Chart]:
    """The history page's charts, one line per queue."""
    times, found = points(span, now)
    labels = [t.strftime(RANGES[span][2]) for t in times]

    def series(measure: Any) -> dict[str, list[float | None]]:
        return {q: [measure(found[(q, t)]) if (q, t) in found else None for t in times] for q in queue_names()}

    def seconds(column: str) -> Any:
        return lambda r: None if r[column] is None else r[column] / 1000

    return [
        line_chart("throughput", "Throughput", "jobs completed per minute", labels,
                   series(lambda r: r["per_minute"]), number(1)),
        line_chart("wait-p95", "Wait, 95th percentile", "seconds from enqueue to first start", labels,
                   series(seconds("p95")), number(1)),
        line_chart("wait-p50", "Wait, median", "seconds from enqueue to first start", labels,
                   series(seconds("p50")), number(1)),
        line_chart("errors", "Error rate", "% of attempts that failed", labels,
                   series(lambda r: 100 * r["failed"] / r["attempts"] if r["attempts"] else 0.0), number(1)),
        line_chart("dead-letters", "Dead letters", "jobs dead-lettered per point", labels,
                   series(lambda r: r["dead_lettered"])),
        line_chart("depth", "Depth", "jobs waiting or delayed, highest", labels, series(lambda r: r["depth"])),
    ]


def page(request: Request) -> Response:
    span = request.query_params.get("range", "24h")
    span = span if span in RANGES else "24h"
    found, error = attempt(charts, span, dt.datetime.now(dt.UTC))
    return render(request, "history.html", page="history", charts=found or [], span=span, spans=list(RANGES),
                  errors=[error] if error else [])
