"""Fixtures for the plugin's tests; they import the installed package (``pip install -e`` it first)."""

from __future__ import annotations

import pytest

from cep_automation_hubspot import HubSpotCRM, HubSpotSettings
from cep_automation_hubspot.testing import FakeHubSpot

TOKEN = "pat-eu1-test-token"


@pytest.fixture
def hubspot():
    """A fake HubSpot whose search lags behind writes, as the real one does."""
    with FakeHubSpot(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def make_crm(hubspot):
    """A HubSpotCRM on the fake (settings given explicitly, never read from the environment)."""

    def make(token=TOKEN, **kwargs):
        return HubSpotCRM(HubSpotSettings(_env_file=None, token=token, base_url=hubspot.url), **kwargs)

    return make


@pytest.fixture
def no_hubspot_env(monkeypatch, tmp_path):
    """No HUBSPOT_* variables and no .env file in the working directory."""
    for name in ("HUBSPOT_TOKEN", "HUBSPOT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
