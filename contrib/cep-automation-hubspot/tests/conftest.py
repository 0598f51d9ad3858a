"""Fixtures for the HubSpot plugin's tests; the package is imported from this source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# So the tests run whether or not cep-automation-hubspot is pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cep_automation.testing.fake_hubspot import FakeHubSpot  # noqa: E402
from cep_automation_hubspot import HubSpotCRM, HubSpotSettings  # noqa: E402

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
