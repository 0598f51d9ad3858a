"""Fixtures for the plugin's tests; they import the installed package (``pip install -e`` it first)."""

from __future__ import annotations

import pytest

from cep_automation_zoho import ZohoCRM, ZohoSettings
from cep_automation_zoho.testing import FakeZoho

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
