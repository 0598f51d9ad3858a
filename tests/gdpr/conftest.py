"""Fixtures for the GDPR tests: a person seeded in our tables, HubSpot as an installed CRM plugin on its fake,
and the real pg_dump/pg_restore of the server's version."""

from __future__ import annotations

import pytest
from gdprkit import EMAIL, NAME, PHONE

import cep_automation_hubspot
from cep_automation.domain import backups
from cep_automation.plugins import get_plugin_manager, load_plugins, reset_plugins
from cep_automation.runtime.integrations import reset_registry
from cep_automation.settings import get_settings
from cep_automation_hubspot.testing import FakeHubSpot


@pytest.fixture
def person(db):
    """Two leads of one person (the second with the phone written another way), on a campus course run."""
    campus = db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                        " RETURNING id").fetchone()["id"]
    course = db.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', 'desempleados')"
                        " RETURNING id").fetchone()["id"]
    run = db.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                     (course, campus)).fetchone()["id"]
    ids = [db.execute(
        "INSERT INTO leads (name, email, phone, source, course_run_id, consent_at, consent_ip, consent_text,"
        " created_at) VALUES (%s, %s, %s, 'web', %s, now(), '10.1.2.3', %s, now() - interval '1 day')"
        " RETURNING id::text", (NAME, email, phone, run, f"{NAME} accepts the privacy policy")).fetchone()["id"]
        for email, phone in ((EMAIL, PHONE), ("ana.z@example.org", "611223344"))]
    return ids


@pytest.fixture
def hubspot(monkeypatch, sandbox):
    """HubSpot registered as an installed plugin would be, on its fake (no search lag)."""
    with FakeHubSpot(token="pat-test", search_lag=False) as fake:
        monkeypatch.setenv("HUBSPOT_TOKEN", "pat-test")
        monkeypatch.setenv("HUBSPOT_BASE_URL", fake.url)
        reset_plugins()
        get_plugin_manager().register(cep_automation_hubspot, name="hubspot")
        reset_registry()
        try:
            yield fake
        finally:
            reset_plugins()
            load_plugins(get_settings())
            reset_registry()


@pytest.fixture(scope="session")
def pg_tools(cep_services):
    major = backups.server_major(cep_services.database_url)
    return {name: backups.find_pg_tool(name, major, None) for name in ("pg_dump", "pg_restore")}


API_TOKEN = "gdpr-test-token-0a1b2c3d"


@pytest.fixture
def api(db, stub_broker, cep_services):
    """The HTTP service on the stub broker, and an authenticated client of it."""
    import httpx

    from cep_automation.settings import load_settings
    from cep_automation.web import ServerThread, create_app

    settings = load_settings(_env_file=None, redis_url=cep_services.redis_url, database_url=cep_services.database_url,
                             cep_api_token=API_TOKEN)
    with ServerThread(create_app(settings)) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as client:
        yield client
