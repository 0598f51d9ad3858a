"""The history and statistics pages with the demo data, their CSV files, and the plans of their reads on a year of
rollups (index ranges, never a sequential scan)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from cep_automation.dev.demo import DAYS, DEFAULT_SEED, load_demo
from cep_automation.dev.demo_figures import load_figures
from cep_automation.web import stats_data


@pytest.fixture
def demo(db):
    now = dt.datetime.now(dt.UTC)
    load_demo(db, now=now)
    return load_figures(db, DEFAULT_SEED, DAYS, now)


def rows_of(response):
    assert response.text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(response.text[1:]), delimiter=";"))


def test_history_page_draws_every_chart_of_both_ranges(client, demo):
    for span, points in (("24h", 96), ("7d", 168)):
        page = client.get(f"/admin/history?range={span}")
        assert page.status_code == 200 and '<html lang="en">' in page.text
        for title in ("Throughput", "Wait, 95th percentile", "Error rate", "Dead letters", "Depth"):
            assert f"<h2>{title}</h2>" in page.text
        assert page.text.count('<polyline class="line s') >= 6 * 5  # every queue on every chart
        assert page.text.count("<tr><th scope=\"row\">") == 6 * points  # the table fallbacks
        assert "https://" not in page.text and "<script>" not in page.text


def test_stats_page_is_in_spanish_with_every_section(client, demo):
    page = client.get("/admin/stats?days=30")
    assert page.status_code == 200 and '<html lang="es">' in page.text
    for heading in ("Leads por día", "Leads por campus", "Leads por curso", "Leads por campaña", "Clics",
                    "Impresiones", "Gasto", "CTR", "CPL", "Anomalías avisadas"):
        assert f"<h2>{heading}</h2>" in page.text or f"<h1>{heading}</h1>" in page.text, heading
    assert "CTR bajo" in page.text and "Telemático" in page.text and "Ocupados · PRL" in page.text
    assert 'href="/admin/stats" lang="es" aria-current="page">Estadísticas</a>' in page.text
    assert client.get("/admin/stats?days=12345").status_code == 200  # an unknown range is the default


def test_leads_csv_adds_up_to_the_rollups(client, db, demo):
    response = client.get("/admin/stats/leads.csv?days=90")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="leads-')
    header, *rows = rows_of(response)
    assert header == ["Fecha", "Dimensión", "Nombre", "Leads", "Con consentimiento"]
    total = sum(int(r[3]) for r in rows if r[1] == "Total")
    assert total == db.execute("SELECT count(*) AS n FROM leads").fetchone()["n"] == 300
    for dimension in ("Campus", "Curso", "Campaña"):
        assert sum(int(r[3]) for r in rows if r[1] == dimension) == total, dimension
    assert {r[2] for r in rows if r[1] == "Campus"} >= {"Madrid", "Málaga", "Sevilla", "Telemático"}


def test_campaigns_csv_escapes_separators_quotes_and_formulas(client, db, demo):
    # Given campaigns whose names hold the separator, quotes, a line break and a formula
    names = ['Sanidad; "otoño"', '=HYPERLINK("http://example.com")', "Dos\nlíneas", "-2+3"]
    today = dt.datetime.now(dt.UTC).date()
    for n, name in enumerate(names):
        campaign_id = db.execute("INSERT INTO campaigns (name, tracking_tag) VALUES (%s, %s) RETURNING id",
                                 (name, f"csv-{n}")).fetchone()["id"]
        db.execute("INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, leads,"
                   " spend, ctr, cpl) VALUES (%s, %s, %s, 12, 1000, 3, 45.5, 1.2, 15.17)", (campaign_id, today, today))
    response = client.get("/admin/stats/campaigns.csv?days=7")
    header, *rows = rows_of(response)
    assert header == ["Campaña", "Inicio del periodo", "Fin del periodo", "Clics", "Impresiones", "CTR (%)", "Leads",
                      "CPL (€)", "Gasto (€)"]
    # Then each name comes back whole, formulas made inert, numbers with decimal commas
    mine = {r[0]: r for r in rows if r[0].lstrip("'") in names}
    assert set(mine) == {'Sanidad; "otoño"', "'=HYPERLINK(\"http://example.com\")", "Dos\nlíneas", "'-2+3"}
    assert mine["Dos\nlíneas"][1:] == [str(today), str(today), "12", "1000", "1,20", "3", "15,17", "45,50"]
    assert '"Sanidad; ""otoño"""' in response.text  # quoted, its quotes doubled


def explain(db, query, params):
    return "\n".join(row["QUERY PLAN"] for row in db.execute("EXPLAIN " + query, params))


def test_reads_are_index_ranges_on_a_year_of_rollups(db, capsys):
    # Given a year of daily, weekly and monthly rollups for 4 campuses, 60 courses and 40 campaigns, a year of daily
    # figures for 40 campaigns and a year of anomalies
    db.execute("INSERT INTO campaigns (id, name, tracking_tag) SELECT g, 'c' || g, 't' || g"
               " FROM generate_series(1, 40) g")
    db.execute("""
        INSERT INTO lead_rollups (granularity, dimension, period_start, key_id, leads, consented)
        SELECT g, d, day, k, 3, 2 FROM unnest(ARRAY['daily', 'weekly', 'monthly']) g,
               generate_series(current_date - 730, current_date, interval '1 day') day,
               LATERAL (VALUES ('total', 0), ('campus', 4), ('course', 60), ('campaign', 40)) dims(d, n),
               generate_series(0, n) k
        WHERE g = 'daily' OR (g = 'weekly' AND extract(isodow FROM day) = 1) OR (g = 'monthly'
              AND extract(day FROM day) = 1)""")
    db.execute("INSERT INTO campaign_metrics (campaign_id, period_start, period_end, clicks, impressions, spend)"
               " SELECT c, day, day, 10, 1000, 5 FROM generate_series(1, 40) c,"
               " generate_series(current_date - 730, current_date, interval '1 day') day")
    db.execute("INSERT INTO campaign_anomalies (campaign_id, kind, severity, message, alerted_at)"
               " SELECT 1 + g % 40, 'low_ctr', 'medium', 'x', now() - g * interval '1 hour'"
               " FROM generate_series(1, 17520) g")
    db.execute("ANALYZE lead_rollups; ANALYZE campaign_metrics; ANALYZE campaign_anomalies")
    first, last = dt.date.today() - dt.timedelta(days=29), dt.date.today()
    # When the statistics page's reads are explained for 30 days
    plans = {
        "lead_rollups": explain(db, "SELECT period_start, key_id, leads, consented FROM lead_rollups WHERE granularity"
                                " = %s AND dimension = %s AND period_start BETWEEN %s AND %s ORDER BY period_start,"
                                " key_id", ("daily", "course", first, last)),
        "campaign_metrics": explain(db, stats_data.CAMPAIGN_FIGURES, (first, last)),
        "campaign_anomalies": explain(db, stats_data.ANOMALIES, (first, last + dt.timedelta(days=1), 200)),
    }
    with capsys.disabled():
        for table, plan in plans.items():
            print(f"\n-- {table}\n{plan}")
    # Then each table is read through an index range, never scanned whole
    for table, plan in plans.items():
        assert "Seq Scan on " + table not in plan and "Index" in plan, plan
    assert db.execute("SELECT count(*) AS n FROM lead_rollups").fetchone()["n"] > 70_000
