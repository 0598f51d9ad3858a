"""Fixtures for the Salesforce plugin's tests; the package is imported from this source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# So the tests run whether or not cep-automation-salesforce is pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cep_automation.testing.fake_salesforce import FakeSalesforce  # noqa: E402
from cep_automation_salesforce import SalesforceCRM, SalesforceSettings  # noqa: E402

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
