"""The CRM packages under ``contrib/``, pip-installed as an operator would, discovered by ``cep-automation plugins``.

Each package is installed with ``pip install ./contrib/<name>`` (offline: no deps, no build
isolation, no index) into its own ``--target`` directory, and the CLI runs in a subprocess with
those directories on ``PYTHONPATH``, so discovery goes through the real ``entry_points.txt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cep_automation.testing.packages import (
    PackageInstallError,
    install_package,
    with_pythonpath,
)
from cep_automation.testing.processes import CLI
from cep_automation_hubspot.testing import FakeHubSpot
from cep_automation_salesforce.testing import FakeSalesforce
from cep_automation_zoho.testing import FakeZoho

CONTRIB = Path(__file__).parents[2] / "contrib"
CRMS = {  # entry-point name → the variables it cannot work without
    "hubspot": ("HUBSPOT_TOKEN",),
    "salesforce": ("SALESFORCE_INSTANCE_URL", "SALESFORCE_TOKEN"),
    "zoho": ("ZOHO_API_DOMAIN", "ZOHO_TOKEN"),
}
PREFIXES = ("HUBSPOT_", "SALESFORCE_", "ZOHO_", "CEP_DISABLED_PLUGINS", "CEP_LOAD_PLUGINS", "CEP_TRACE_PLUGINS")
UPSERT = """
from cep_automation.plugins import collect_integrations
from cep_automation.plugins.kinds import Contact
from cep_automation.settings import get_settings
crm = collect_integrations(get_settings()).get("crm", "{name}")
print(crm.upsert_lead(Contact(email="ana@example.com", last_name="García", external_id="42")))
"""


def project(name: str) -> dict:
    return tomllib.loads((CONTRIB / f"cep-automation-{name}" / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="session")
def contrib_sites(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contrib-crms")
    try:
        return {name: install_package(CONTRIB / f"cep-automation-{name}", root) for name in CRMS}
    except PackageInstallError as error:
        pytest.fail(str(error))


@pytest.fixture
def run(cep_services, contrib_sites, tmp_path):
    """Run Python code in a subprocess with the three CRMs installed, no CRM variables, and ``variables``."""

    def run(*argv: str, **variables: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
        env = with_pythonpath({**env, **cep_services.env()}, contrib_sites.values())
        # tmp_path as the working directory: no stray .env file can change the settings.
        return subprocess.run(list(argv), env={**env, **variables}, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    return run


def plugins(run, **variables: str) -> dict[str, dict]:
    result = run(*CLI, "plugins", "--json", **variables)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["plugins"]}


def crm_of(row: dict, name: str) -> dict:
    found = [i for i in row["integrations"] if (i["kind"], i["name"]) == ("crm", name)]
    assert len(found) == 1, row
    return found[0]


def test_pip_install_from_contrib_gives_the_entry_point_and_no_tests(contrib_sites):
    for name, site in contrib_sites.items():
        meta = project(name)
        dist = site / f"cep_automation_{name}-{meta['version']}.dist-info"
        assert meta["name"] == f"cep-automation-{name}" and "cep-automation" in meta["dependencies"]
        assert f"[cep_automation]\n{name} = cep_automation_{name}" in (dist / "entry_points.txt").read_text()
        assert (site / f"cep_automation_{name}" / "crm.py").is_file()
        assert not (site / "tests").exists()


def test_each_crm_is_discovered_and_disabled_naming_its_missing_settings(run):
    found = plugins(run)
    for name, variables in CRMS.items():
        row = found[name]
        assert row["enabled"], row
        assert row["source"] == (f"entry point cep_automation_{name} "
                                 f"(cep-automation-{name} {project(name)['version']})")
        crm = crm_of(row, name)
        assert crm["enabled"] is False
        assert crm["reason"] == "not configured: set " + ", ".join(variables)


def test_each_crm_is_enabled_by_its_own_variables(run):
    found = plugins(run, HUBSPOT_TOKEN="pat-x", SALESFORCE_INSTANCE_URL="https://cep.my.salesforce.com",
                    SALESFORCE_TOKEN="00D!x", ZOHO_API_DOMAIN="https://www.zohoapis.eu", ZOHO_TOKEN="1000.x")
    for name in CRMS:
        assert crm_of(found[name], name)["enabled"], found[name]


def test_blocked_crms_register_nothing(run):
    found = plugins(run, CEP_DISABLED_PLUGINS="hubspot,zoho")
    for name in ("hubspot", "zoho"):
        assert found[name]["enabled"] is False
        assert found[name]["reason"] == "blocked by CEP_DISABLED_PLUGINS"
        assert found[name]["integrations"] == []
    assert crm_of(found["salesforce"], "salesforce")["enabled"] is False  # loaded, not configured


def test_allowlist_loads_only_the_named_crm(run):
    found = plugins(run, CEP_LOAD_PLUGINS="salesforce")
    assert found["salesforce"]["enabled"]
    assert found["hubspot"]["reason"] == found["zoho"]["reason"] == "not in CEP_LOAD_PLUGINS"


def test_installed_crms_upsert_through_their_fakes(run):
    with FakeHubSpot(token="h") as hubspot, FakeSalesforce(token="s") as salesforce, FakeZoho(token="z") as zoho:
        variables = {
            "hubspot": {"HUBSPOT_TOKEN": "h", "HUBSPOT_BASE_URL": hubspot.url},
            "salesforce": {"SALESFORCE_INSTANCE_URL": salesforce.url, "SALESFORCE_TOKEN": "s"},
            "zoho": {"ZOHO_API_DOMAIN": zoho.url, "ZOHO_TOKEN": "z"},
        }
        ids = {}
        for name, env in variables.items():
            result = run(sys.executable, "-c", UPSERT.format(name=name), **env)
            assert result.returncode == 0, result.stderr
            ids[name] = result.stdout.strip()
        assert ids["hubspot"] in hubspot.contacts
        assert ids["salesforce"] in salesforce.leads
        assert ids["zoho"] in zoho.leads
