"""Fixtures for the Zoho plugin's tests; the package is imported from this source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# So the tests run whether or not cep-automation-zoho is pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cep_automation.testing.fake_zoho import FakeZoho  # noqa: E402
from cep_automation_zoho import ZohoCRM, ZohoSettings  # noqa: E402

TOKEN = "1000.zoho-test-token.abc"


@pytest.fixture
def zoho():
    with FakeZoho(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def make_crm(zoho):
    """A ZohoCRM on the fake (settings given explicitly, never read from the environment)."""

    def make(token=TOKEN, timeout=None, **values):
        settings = ZohoSettings(_env_file=None, api_domain=zoho.url, token=token, **values)
        return ZohoCRM(settings, **({"timeout": timeout} if timeout else {}))

    return make


@pytest.fixture
def no_zoho_env(monkeypatch, tmp_path):
    """No ZOHO_* variables and no .env file in the working directory."""
    for name in ("API_DOMAIN", "TOKEN", "API_VERSION"):
        monkeypatch.delenv(f"ZOHO_{name}", raising=False)
    monkeypatch.chdir(tmp_path)
