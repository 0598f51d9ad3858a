"""``cep-automation plugins`` with real installed plugin packages, run as an operator would.

The packages under ``tests/plugin_packages/`` are installed once per session with pip into a
scratch ``--target`` directory, and the CLI runs in a subprocess with that directory on
``PYTHONPATH``: discovery goes through real ``*.dist-info/entry_points.txt`` metadata, the same
way as in production (in-process tests never load entry points; see ``manager.LOAD_ENTRYPOINTS``).
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

CLI = [sys.executable, "-c", "from cep_automation.cli import main; main()"]
PACKAGES = Path(__file__).parents[1] / "plugin_packages"
PLUGIN_VARIABLES = ("CEP_DISABLED_PLUGINS", "CEP_LOAD_PLUGINS", "CEP_TRACE_PLUGINS")


def version_of(package: str) -> str:
    return tomllib.loads((PACKAGES / package / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory) -> dict[str, Path]:
    """``--target`` directories with ``cep-automation-hello`` and ``cep-automation-broken`` installed."""
    root = tmp_path_factory.mktemp("plugin-packages")
    try:
        return {name: install_package(PACKAGES / f"cep-automation-{name}", root) for name in ("hello", "broken")}
    except PackageInstallError as error:
        pytest.fail(str(error))


@pytest.fixture
def cep(cep_services, plugin_sites, tmp_path):
    """Run the CLI in a subprocess with the given plugin sites on PYTHONPATH and extra variables."""

    def run(*args: str, sites: tuple[str, ...] = ("hello",), **variables: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in PLUGIN_VARIABLES}
        env.update(cep_services.env())
        env = with_pythonpath(env, [plugin_sites[name] for name in sites])
        env.update(variables)
        # tmp_path as the working directory: no stray .env file can change the settings.
        return subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    return run


def listed(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["plugins"]}


def integrations_of(row: dict) -> dict[str, dict]:
    return {f"{i['kind']}:{i['name']}": i for i in row["integrations"]}


def all_integrations(plugins: dict[str, dict]) -> set[str]:
    return {key for row in plugins.values() for key in integrations_of(row)}


def assert_clean_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_installed_plugin_is_discovered_with_its_provenance(cep):
    plugins = listed(cep("plugins", "--json"))

    hello = plugins["hello"]
    assert hello["enabled"] and hello["reason"] == ""
    assert hello["source"].startswith("entry point cep_automation_hello")
    assert f"cep-automation-hello {version_of('cep-automation-hello')}" in hello["source"]
    found = integrations_of(hello)
    assert set(found) == {"crm:hello", "alerts:hello-alerts"}
    assert not found["crm:hello"]["enabled"]
    assert "HELLO_TOKEN" in found["crm:hello"]["reason"]
    assert found["alerts:hello-alerts"]["enabled"]

    builtin = plugins["default_alerts"]
    assert builtin["enabled"] and builtin["source"] == "built-in cep_automation.plugins.default_alerts"
    assert integrations_of(builtin)["alerts:log"]["enabled"]


def test_text_listing_shows_states_and_reasons(cep):
    result = cep("plugins")
    assert result.returncode == 0, result.stderr
    assert "hello: enabled — entry point cep_automation_hello (cep-automation-hello" in result.stdout
    assert "crm:hello disabled (not configured: set HELLO_TOKEN)" in result.stdout
    assert "alerts:hello-alerts enabled" in result.stdout
    assert "default_alerts: enabled — built-in cep_automation.plugins.default_alerts" in result.stdout


def test_plugin_command_runs_through_the_cli(cep):
    result = cep("hello", "--name", "Ana")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello, Ana, from cep-automation-hello"
    assert "hello" in cep("--help").stdout


def test_blocked_plugin_is_listed_disabled_without_integrations_or_commands(cep):
    plugins = listed(cep("plugins", "--json", CEP_DISABLED_PLUGINS="hello"))

    assert plugins["hello"]["enabled"] is False
    assert plugins["hello"]["reason"] == "blocked by CEP_DISABLED_PLUGINS"
    assert plugins["hello"]["integrations"] == []
    assert not {"crm:hello", "alerts:hello-alerts"} & all_integrations(plugins)
    assert plugins["default_alerts"]["enabled"]

    command = cep("hello", CEP_DISABLED_PLUGINS="hello")
    assert command.returncode == 2
    assert "No such command 'hello'" in command.stderr


def test_blocking_a_builtin(cep):
    plugins = listed(cep("plugins", "--json", CEP_DISABLED_PLUGINS=" default_alerts , nosuch"))

    assert plugins["default_alerts"]["enabled"] is False
    assert plugins["default_alerts"]["reason"] == "blocked by CEP_DISABLED_PLUGINS"
    assert "alerts:log" not in all_integrations(plugins)
    assert plugins["hello"]["enabled"]
    assert "nosuch" not in plugins  # a blocked name that nothing provides is not a plugin


def test_empty_allowlist_loads_no_entry_points(cep):
    plugins = listed(cep("plugins", "--json", CEP_LOAD_PLUGINS=""))

    assert plugins["hello"]["enabled"] is False
    assert plugins["hello"]["reason"] == "not in CEP_LOAD_PLUGINS"
    assert plugins["hello"]["integrations"] == []
    assert plugins["default_alerts"]["enabled"]  # the allowlist names entry points; built-ins always load
    assert "No such command 'hello'" in cep("hello", CEP_LOAD_PLUGINS="").stderr


def test_allowlist_naming_the_plugin_loads_it(cep):
    plugins = listed(cep("plugins", "--json", CEP_LOAD_PLUGINS="hello"))
    assert plugins["hello"]["enabled"]
    assert "alerts:hello-alerts" in integrations_of(plugins["hello"])
    assert cep("hello", CEP_LOAD_PLUGINS="other, hello").returncode == 0


def test_blocklist_beats_allowlist(cep):
    plugins = listed(cep("plugins", "--json", CEP_LOAD_PLUGINS="hello", CEP_DISABLED_PLUGINS="hello"))
    assert plugins["hello"]["reason"] == "blocked by CEP_DISABLED_PLUGINS"


def test_misspelled_hook_stops_start_up_with_a_clear_message(cep):
    # Given a plugin whose hookimpl is named register_integration (no final s) installed beside hello
    for args in (("plugins", "--json"), ("hello",)):
        # When any command starts, Then check_pending() refuses it, naming the plugin and the way out
        result = cep(*args, sites=("hello", "broken"), CEP_DISABLED_PLUGINS="badargs")
        assert_clean_error(
            result,
            "error: plugin broken: unknown hook 'register_integration'",
            "CEP_DISABLED_PLUGINS=broken",
        )
        assert result.stdout == ""


def test_hook_with_an_unknown_argument_stops_start_up_naming_the_entry_point(cep):
    # pluggy refuses this one before registering it, so its name comes from the entry point
    result = cep("plugins", sites=("hello", "broken"), CEP_DISABLED_PLUGINS="broken")
    assert_clean_error(result, "error: plugin badargs:", "'group'", "CEP_DISABLED_PLUGINS=badargs")


def test_blocking_the_broken_plugins_lets_the_cli_start(cep):
    plugins = listed(cep("plugins", "--json", sites=("hello", "broken"), CEP_DISABLED_PLUGINS="broken,badargs"))
    for name in ("broken", "badargs"):
        assert plugins[name]["reason"] == "blocked by CEP_DISABLED_PLUGINS"
        assert f"cep-automation-broken {version_of('cep-automation-broken')}" in plugins[name]["source"]
    assert plugins["hello"]["enabled"]
