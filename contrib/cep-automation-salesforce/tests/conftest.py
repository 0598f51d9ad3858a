"""Fixtures for the plugin's tests; they import the installed package (``pip install -e`` it first)."""

from __future__ import annotations

import pytest

from cep_automation_salesforce import SalesforceCRM, SalesforceSettings
from cep_automation_salesforce.testing import FakeSalesforce

TOKEN = "00Dxx0000001gPL!sf-test-token"


@pytest.fixture
def salesforce():
    with FakeSalesforce(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def make_crm(salesforce):
    """A SalesforceCRM on the fake (settings given explicitly, never read from the environment)."""

    def make(token=TOKEN, timeout=None, **values):
        settings = SalesforceSettings(_env_file=None, instance_url=salesforce.url, token=token, **values)
        return SalesforceCRM(settings, **({"timeout": timeout} if timeout else {}))

    return make


@pytest.fixture
def no_salesforce_env(monkeypatch, tmp_path):
    """No SALESFORCE_* variables and no .env file in the working directory."""
    for name in ("INSTANCE_URL", "TOKEN", "API_VERSION", "EXTERNAL_ID_FIELD"):
        monkeypatch.delenv(f"SALESFORCE_{name}", raising=False)
    monkeypatch.chdir(tmp_path)
