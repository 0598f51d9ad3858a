"""The history and statistics pages in headless Chromium with the demo data: charts drawn, nothing wider than the
screen, the table fallback opens, and screenshots at laptop and phone widths (``CEP_SCREENSHOT_DIR`` keeps them)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from test_dashboard_browser import LAPTOP, PHONE, chromium, new_page  # noqa: F401 (chromium is a fixture)

from cep_automation.dev.demo import DAYS, DEFAULT_SEED, load_demo
from cep_automation.dev.demo_figures import load_figures

PAGES = {"history-24h": "/admin/history", "history-7d": "/admin/history?range=7d", "stats": "/admin/stats",
         "stats-90": "/admin/stats?days=90"}


def test_charts_render_at_laptop_and_phone_widths(chromium, server, db, secrets, tmp_path):  # noqa: F811
    now = dt.datetime.now(dt.UTC)
    load_demo(db, now=now)
    load_figures(db, DEFAULT_SEED, DAYS, now)
    out = Path(os.environ.get("CEP_SCREENSHOT_DIR") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for device_name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        context, page = new_page(chromium, server.url, secrets.api, device)
        try:
            for name, path in PAGES.items():
                page.goto(path)
                plots = page.locator("svg.chart-plot")
                assert plots.count() >= 6, name
                box = plots.first.bounding_box()
                assert box and box["width"] > 250 and box["height"] >= 100, (name, box)
                assert page.locator("svg.chart-plot polyline").count() >= 10, name
                assert page.evaluate("document.documentElement.scrollWidth") <= device["viewport"]["width"], name
                page.screenshot(path=str(out / f"{device_name}-{name}.png"), full_page=True)
            # The table fallback opens, and stays within the screen
            page.locator("figure.chart details summary").first.click()
            assert page.locator("figure.chart details table").first.is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= device["viewport"]["width"]
            # The navigation leads to both pages; the Spanish link says so
            page.goto("/admin/")
            page.get_by_role("link", name="History").click()
            page.wait_for_url("**/admin/history")
            page.get_by_role("link", name="Estadísticas").click()
            page.wait_for_url("**/admin/stats")
            assert page.locator("html").get_attribute("lang") == "es"
        finally:
            context.close()
    assert len(list(out.glob("*.png"))) == 2 * len(PAGES)
