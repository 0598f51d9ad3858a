"""``/admin/stats``: the marketing team's statistics, in Spanish, with their figures as CSV.

Leads per day (in total, by campus, course and campaign), each campaign's clicks, impressions, spend, CTR
and CPL over time, and the campaign anomalies alerted, over the last 7, 30, 90 or 365 days
(:mod:`cep_automation.web.stats_data` reads them). The CSV files are what a spreadsheet in Spain opens as
it is: semicolons, decimal commas, UTF-8 with a byte-order mark, and no cell that could run as a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cep_automation.db import connection
from cep_automation.web import stats_data as data
from cep_automation.web.charts import Chart, line_chart, number
from cep_automation.web.dashboard import attempt
from cep_automation.web.templating import render

RANGES = (7, 30, 90, 365)
TOP = 5  # lines per chart; the rest are added up as "Otros"
DIMENSION_TITLES = {"total": "Total", "campus": "Campus", "course": "Curso", "campaign": "Campaña"}
ANOMALY_KINDS = {"low_ctr": "CTR bajo", "budget_spent": "Presupuesto agotado", "budget_90": "Presupuesto al 90 %"}
SEVERITIES = {"low": "baja", "medium": "media", "high": "alta", "critical": "crítica"}
COMMA = number(0, ",")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def period(request: Request) -> tuple[int, dt.date, dt.date]:
    """The days asked for (``?days=``, 30 by default) and the first and last day (UTC, today included)."""
    asked = request.query_params.get("days", "30")
    span = int(asked) if asked.isdigit() and int(asked) in RANGES else 30
    last = dt.datetime.now(dt.UTC).date()
    return span, last - dt.timedelta(days=span - 1), last


def top_series(found: dict[str, dict[dt.date, tuple[int, int]]], days: list[dt.date]) -> dict[str, list[float | None]]:
    """The ``TOP`` names with most leads, one value per day, and the others added up as "Otros"."""
    totals = sorted(found, key=lambda name: (-sum(v[0] for v in found[name].values()), name))
    series: dict[str, list[float | None]] = {name: [found[name].get(d, (0, 0))[0] for d in days]
                                             for name in totals[:TOP]}
    if len(totals) > TOP:
        series["Otros"] = [sum(found[name].get(d, (0, 0))[0] for name in totals[TOP:]) for d in days]
    return series


def totals(found: dict[str, dict[dt.date, tuple[int, int]]]) -> list[tuple[str, int, int]]:
    """(name, leads, consented) over the period, most leads first."""
    rows = [(name, sum(v[0] for v in by_day.values()), sum(v[1] for v in by_day.values()))
            for name, by_day in found.items()]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def lead_sections(conn: Any, days: list[dt.date]) -> list[dict[str, Any]]:
    labels = [d.strftime("%d/%m") for d in days]
    total = data.leads_by(conn, "total", days[0], days[-1]).get("Total", {})
    sections: list[dict[str, Any]] = [{"chart": line_chart("leads", "Leads por día", "leads recibidos", labels, {
        "Leads": [total.get(d, (0, 0))[0] for d in days], "Con consentimiento": [total.get(d, (0, 0))[1] for d in days],
    }, COMMA, "es"), "totals": None}]
    for dimension, title in (("campus", "Leads por campus"), ("course", "Leads por curso"),
                             ("campaign", "Leads por campaña")):
        found = data.leads_by(conn, dimension, days[0], days[-1])
        sections.append({"chart": line_chart(f"leads-{dimension}", title, "leads por día", labels,
                                             top_series(found, days), COMMA, "es"),
                         "name": DIMENSION_TITLES[dimension], "totals": totals(found)})
    return sections


def campaign_charts(rows: list[dict[str, Any]], days: list[dt.date]) -> list[Chart]:
    labels = [d.strftime("%d/%m") for d in days]
    by_name: dict[str, dict[dt.date, dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["name"], {})[row["period_end"]] = row
    spend = sorted(by_name, key=lambda n: (-sum(float(r["spend"]) for r in by_name[n].values()), n))[:TOP + 1]

    def series(column: str) -> dict[str, list[float | None]]:
        return {n: [None if d not in by_name[n] or by_name[n][d][column] is None else float(by_name[n][d][column])
                    for d in days] for n in spend}

    euros = number(2, ",")
    return [line_chart("clicks", "Clics", "por día", labels, series("clicks"), COMMA, "es"),
            line_chart("impressions", "Impresiones", "por día", labels, series("impressions"), COMMA, "es"),
            line_chart("spend", "Gasto", "euros por día", labels, series("spend"), euros, "es"),
            line_chart("ctr", "CTR", "% de impresiones con clic", labels, series("ctr"), number(2, ","), "es"),
            line_chart("cpl", "CPL", "euros por lead", labels, series("cpl"), euros, "es")]


def campaign_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per campaign over the period: sums, and CTR and CPL from the sums."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        t = found.setdefault(row["name"], {"name": row["name"], "clicks": 0, "impressions": 0, "leads": 0,
                                           "spend": Decimal(0)})
        for column in ("clicks", "impressions", "leads", "spend"):
            t[column] += row[column]
    for t in found.values():
        t["ctr"] = 100 * t["clicks"] / t["impressions"] if t["impressions"] else None
        t["cpl"] = t["spend"] / t["leads"] if t["leads"] else None
    return sorted(found.values(), key=lambda t: (-t["spend"], t["name"]))


def read_page(first: dt.date, last: dt.date) -> dict[str, Any]:
    days = data.days(first, last)
    with connection() as conn:
        leads = lead_sections(conn, days)
        rows = data.campaign_figures(conn, first, last)
        alerted = data.anomalies(conn, first, last)
    return {"leads": leads, "campaign_charts": campaign_charts(rows, days), "campaigns": campaign_totals(rows),
            "anomalies": alerted}


def page(request: Request) -> Response:
    span, first, last = period(request)
    found, error = attempt(read_page, first, last)
    return render(request, "stats.html", page="stats", lang="es", span=span, spans=RANGES, first=first, last=last,
                  stats=found, kinds=ANOMALY_KINDS, severities=SEVERITIES, errors=[error] if error else [])


def cell(value: Any) -> str:
    """One CSV cell: decimal commas, ISO dates, and text that starts like a formula made inert."""
    if value is None:
        return ""
    if isinstance(value, (Decimal, float)):
        return f"{value:.2f}".replace(".", ",")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(name: str, header: list[str], rows: Iterable[Iterable[Any]]) -> Response:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([cell(value) for value in row] for row in rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def leads_csv(request: Request) -> Response:
    """Every day's leads of the period, in total and by campus, course and campaign."""
    _, first, last = period(request)
    rows = []
    with connection() as conn:
        for dimension, title in DIMENSION_TITLES.items():
            for name, by_day in sorted(data.leads_by(conn, dimension, first, last).items()):
                rows += [(day, title, name, leads, consented) for day, (leads, consented) in by_day.items()]
    rows.sort(key=lambda row: (row[0], list(DIMENSION_TITLES.values()).index(row[1]), row[2]))
    return csv_response(f"leads-{first}-{last}.csv", ["Fecha", "Dimensión", "Nombre", "Leads", "Con consentimiento"],
                        rows)


def campaigns_csv(request: Request) -> Response:
    """Each campaign's figures for the periods ending in the range."""
    _, first, last = period(request)
    with connection() as conn:
        rows = data.campaign_figures(conn, first, last)
    return csv_response(f"campanas-{first}-{last}.csv", [
        "Campaña", "Inicio del periodo", "Fin del periodo", "Clics", "Impresiones", "CTR (%)", "Leads", "CPL (€)",
        "Gasto (€)"], ([r["name"], r["period_start"], r["period_end"], r["clicks"], r["impressions"], r["ctr"],
                        r["leads"], r["cpl"], r["spend"]] for r in sorted(rows, key=lambda r: (r["period_end"],
                                                                                              r["name"]))))
