"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): retry a dead letter end to end,
and screenshots of every page at laptop and phone widths."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from cep_automation.records import job_state
from cep_automation.runtime.job import JobHandle

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright (no browser download): skipped, with the reason, where it cannot run."""
    problem = None
    if shutil.which(CHROMIUM) is None:
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "playwright is not installed (pip install playwright; no `playwright install` needed)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the dashboard browser tests must run in CI: {problem}")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def new_page(chromium, url, token, device):
    context = chromium.new_context(base_url=url, http_credentials={"username": "ops", "password": token}, **device)
    return context, context.new_page()


@pytest.mark.slow
def test_retry_a_dead_letter_and_see_the_job_complete(chromium, serve_process, start_worker, db, secrets,
                                                      redis_client, cep_services):
    # Given the service and a stats worker on the Redis broker, and a dead stats.rollup
    letter_id = db.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, error_type, error_message, traceback,"
        " attempts) VALUES ('stats', 'stats.rollup', 'browser-dead-1', %s, 'TransientError',"
        " 'database timed out', 'Traceback (most recent call last): ...', 3) RETURNING id",
        (Jsonb({"args": [], "kwargs": {"date": "2026-11-10", "granularity": "daily"}}),)).fetchone()["id"]
    url, _ = serve_process()
    start_worker("stats")
    context, page = new_page(chromium, url, secrets.api, LAPTOP)
    try:
        # When an operator opens the dashboard, the dead letter is counted and the counts refresh live
        page.goto("/admin/")
        assert page.locator('[data-queue="stats"][data-state="dead"]').inner_text() == "1"
        redis_client.rpush(f"{cep_services.namespace}:llm", "parked-message")  # no llm worker runs here
        expect(page.locator('[data-queue="llm"][data-state="waiting"]')).to_have_text("1", timeout=15_000)
        expect(page.locator("#live-status")).to_contain_text("updated")
        # ... finds it among the dead letters, opens it and retries it
        page.get_by_role("link", name="Dead letters").click()
        page.get_by_role("link", name=f"#{letter_id}").click()
        assert "database timed out" in page.inner_text("main")
        page.get_by_role("button", name="Retry").click()
        page.wait_for_url(f"**/admin/dead-letters/{letter_id}")
        assert "Retried as message" in page.locator(".notice").inner_text()
        # Then the new job shows as completed once the worker has run it
        page.locator("#retried-job").click()
        deadline = time.monotonic() + 60
        while "completed" not in page.locator(".panel-head .badge").inner_text() and time.monotonic() < deadline:
            page.wait_for_timeout(500)
            page.reload()
        assert page.locator(".panel-head .badge").inner_text() == "completed"
        assert "daily rollup from 2026-11-10" in page.locator("pre.log").inner_text()
    finally:
        context.close()


def seed(db, redis_client, namespace):
    """A few dead letters (with personal data to mask), finished and running jobs, and a live worker."""
    for n, (queue, actor) in enumerate([("leads", "lead.created"), ("stats", "stats.rollup"),
                                        ("campaigns", "campaign.sync")]):
        db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload, error_type, error_message,"
                   " traceback, attempts) VALUES (%s, %s, %s, %s, 'PermanentError', %s, %s, 3)",
                   (queue, actor, f"shot-dead-{n}", Jsonb({"args": [], "kwargs": {"email": "ana.garcia@example.com"}}),
                    "whatsapp: invalid phone +34600123456 for ana.garcia@example.com",
                    "Traceback (most recent call last):\n  File \"cep_automation/steps.py\", line 42, in run\n"
                    "PermanentError: whatsapp: invalid phone +34600123456"))
    for n, status in enumerate(["completed", "completed", "retried", "dead", "skipped"]):
        db.execute("INSERT INTO audit_log (action, actor, queue, message_id, status, attempt, duration_ms, metadata)"
                   " VALUES ('lead.automated', 'lead.created', 'leads', %s, %s, 1, 840, %s)",
                   (f"shot-job-{n}", status, Jsonb({"steps": {"mailchimp": {"status": "success"}}})))
    job_state.record("shot-running-1", "active", actor="stats.rollup", queue="stats", attempt=1, progress=40)
    handle = JobHandle("shot-running-1")
    handle.log("daily rollup started for 2026-11-24")
    handle.log("contacting ana.garcia@example.com about +34600123456")
    job_state.get_job("shot-running-1")
    redis_client.zadd(f"{namespace}:__heartbeats__", {"0f4e2c3a-worker-automation": time.time() * 1000})


def test_screenshots_at_laptop_and_phone_widths(chromium, server, db, redis_client, cep_services, secrets,
                                                tmp_path):
    seed(db, redis_client, cep_services.namespace)
    out = Path(os.environ.get("CEP_SCREENSHOT_DIR") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    letter_id = db.execute("SELECT min(id) AS id FROM dead_letters").fetchone()["id"]
    pages = {"overview": "/admin/", "jobs": "/admin/jobs", "job": "/admin/jobs/shot-running-1",
             "dead-letters": "/admin/dead-letters", "dead-letter": f"/admin/dead-letters/{letter_id}",
             "schedules": "/admin/schedules", "workers": "/admin/workers", "flow": "/admin/flow"}
    for device_name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        context, page = new_page(chromium, server.url, secrets.api, device)
        try:
            for name, path in pages.items():
                page.goto(path)
                text = page.inner_text("body")
                assert "ana.garcia@example.com" not in text and "+34600123456" not in text, name
                # Nothing is wider than the screen: no sideways scrolling on a phone.
                assert page.evaluate("document.documentElement.scrollWidth") <= device["viewport"]["width"], name
                page.screenshot(path=str(out / f"{device_name}-{name}.png"), full_page=True)
        finally:
            context.close()
    assert len(list(out.glob("*.png"))) == 2 * len(pages)
