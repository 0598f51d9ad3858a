"""The plugin manager in-process: load order, idempotence, blocklist, allowlist, check_pending, tracing.

Entry points are discovered from fake ``Distribution`` objects (pluggy's own recipe), so nothing
installed in the environment can leak in; the real-install path is in ``tests/cli/test_plugins.py``.
"""

from __future__ import annotations

import logging
import sys
import types
from importlib import metadata

import click
import pytest
from pluggy import PluginValidationError

import cep_automation
from cep_automation.plugins import manager
from cep_automation.plugins.integration import Integration

# Every built-in plugin, in load order (the tests add their own plugins around these).
BUILTINS = [manager.builtin_name(module) for module in manager.DEFAULT_PLUGINS]


class StubAlerts(Integration):
    """An alerts sink a fake plugin registers."""

    name = "stub"
    kind = "alerts"


def plugin_module(name: str) -> types.ModuleType:
    """A module implementing register_integrations, as an installed plugin's would."""
    module = types.ModuleType(name)

    @cep_automation.hookimpl
    def register_integrations(register):
        register(type(f"{name}Alerts", (StubAlerts,), {"name": name})(None))

    module.register_integrations = register_integrations
    return module


class FakeDistribution:
    """Just what pluggy and ``describe_plugins`` read from an installed distribution."""

    def __init__(self, name: str, version: str, entry_points: list[metadata.EntryPoint]) -> None:
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = entry_points


@pytest.fixture
def installed(fresh_plugins):
    """Two installed plugin distributions, ``alpha`` and ``beta``, and entry-point loading switched on."""
    # Its own MonkeyPatch, undone before fresh_plugins reloads the manager as at boot.
    with pytest.MonkeyPatch.context() as patch:
        entry_points = {}
        for name in ("alpha", "beta"):
            patch.setitem(sys.modules, f"cep_fake_{name}", plugin_module(name))
            entry_points[name] = metadata.EntryPoint(name=name, value=f"cep_fake_{name}", group=manager.GROUP)
        dists = [
            FakeDistribution("cep-automation-alpha", "1.2", [entry_points["alpha"]]),
            FakeDistribution("cep-automation-beta", "0.3", [entry_points["beta"]]),
            FakeDistribution("unrelated", "9.9", [metadata.EntryPoint(name="x", value="os", group="console_scripts")]),
        ]
        patch.setattr(metadata, "distributions", lambda: iter(dists))
        patch.setattr(manager, "LOAD_ENTRYPOINTS", True)
        yield patch


def names(pm) -> list[str]:
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)


def described(settings) -> dict[str, manager.PluginInfo]:
    return {info.name: info for info in manager.describe_plugins(settings)}


def test_nothing_loads_on_import_and_built_ins_load_on_demand(fresh_plugins, settings_with):
    assert names(manager.get_plugin_manager()) == []
    pm = manager.load_plugins(settings_with())
    assert pm is manager.get_plugin_manager()
    assert names(pm) == BUILTINS


def test_load_plugins_is_idempotent(installed, settings_with):
    settings = settings_with()
    pm = manager.load_plugins(settings)
    before = (names(pm), len(pm.hook.register_integrations.get_hookimpls()))
    assert manager.load_plugins(settings) is pm
    assert manager.load_plugins(settings_with(cep_disabled_plugins="alpha")) is pm  # already loaded: a no-op
    assert (names(pm), len(pm.hook.register_integrations.get_hookimpls())) == before
    assert before == (sorted(["alpha", "beta", *BUILTINS]), 2 + len(BUILTINS))


def test_tests_never_load_entry_points_by_default(installed, settings_with):
    installed.setattr(manager, "LOAD_ENTRYPOINTS", False)
    settings = settings_with()
    assert names(manager.load_plugins(settings)) == BUILTINS
    assert described(settings)["alpha"].reason == "entry points are not loaded in tests"


def test_entry_points_are_described_with_their_distribution(installed, settings_with):
    settings = settings_with()
    found = described(settings)
    assert found["alpha"] == manager.PluginInfo("alpha", "entry point cep_fake_alpha (cep-automation-alpha 1.2)", True)
    assert found["default_alerts"] == manager.PluginInfo(
        "default_alerts", "built-in cep_automation.plugins.default_alerts", True
    )
    assert "x" not in found  # other entry-point groups are not plugins
    # Entry points first, then built-ins: the order operators see and pluggy registers.
    assert [info.name for info in manager.describe_plugins(settings)] == ["alpha", "beta", *BUILTINS]


@pytest.mark.parametrize("blocked", ["alpha", *BUILTINS])
def test_blocklist_stops_entry_points_and_built_ins(installed, settings_with, blocked):
    settings = settings_with(cep_disabled_plugins=f" {blocked} ,nosuch")
    pm = manager.load_plugins(settings)
    assert blocked not in names(pm) and pm.is_blocked(blocked)
    found = described(settings)
    assert found[blocked].enabled is False and found[blocked].reason == "blocked by CEP_DISABLED_PLUGINS"
    assert "nosuch" not in found  # blocking a name nothing provides does not invent a plugin


@pytest.mark.parametrize("allow, loaded", [
    (None, ["alpha", "beta", *BUILTINS]),
    ("", BUILTINS),
    ("beta", ["beta", *BUILTINS]),
    (" beta , alpha ,", ["alpha", "beta", *BUILTINS]),
    ("default_alerts", BUILTINS),  # the allowlist names entry points; built-ins always load
])
def test_allowlist_loads_only_the_named_entry_points(installed, settings_with, allow, loaded):
    settings = settings_with(cep_load_plugins=allow)
    assert names(manager.load_plugins(settings)) == sorted(loaded)
    for name in {"alpha", "beta"} - set(loaded):
        assert described(settings)[name].reason == "not in CEP_LOAD_PLUGINS"


def test_blocklist_beats_allowlist(installed, settings_with):
    settings = settings_with(cep_load_plugins="alpha,beta", cep_disabled_plugins="beta")
    assert names(manager.load_plugins(settings)) == sorted(["alpha", *BUILTINS])


def test_plugins_registered_by_hand_are_described(fresh_plugins, settings_with):
    pm = manager.get_plugin_manager()
    plugin = plugin_module("by_hand")
    pm.register(plugin, name="by_hand")
    try:
        info = described(settings_with())["by_hand"]
        assert info == manager.PluginInfo("by_hand", "registered at run time", True)
    finally:
        pm.unregister(name="by_hand")


class Misspelled:
    """A plugin whose hook name lacks its final s: pluggy alone would never call it."""

    @cep_automation.hookimpl
    def register_integration(self, register):
        raise AssertionError("never called")


class WrongArgument:
    """A plugin asking for an argument the spec does not pass."""

    @cep_automation.hookimpl
    def register_commands(self, cli, group):
        raise AssertionError("never called")


def test_check_pending_rejects_a_misspelled_hook_at_load(fresh_plugins, settings_with):
    pm = manager.get_plugin_manager()
    pm.register(Misspelled, name="misspelled")
    try:
        with pytest.raises(PluginValidationError, match="unknown hook 'register_integration'") as error:
            manager.load_plugins(settings_with())
        assert pm.get_name(error.value.plugin) == "misspelled"
    finally:
        pm.unregister(name="misspelled")


def test_a_misspelled_hook_in_a_blocked_plugin_does_not_stop_start_up(installed, settings_with):
    broken = types.ModuleType("cep_fake_alpha")
    broken.register_integration = Misspelled.register_integration
    installed.setitem(sys.modules, "cep_fake_alpha", broken)
    with pytest.raises(PluginValidationError):
        manager.load_plugins(settings_with())
    manager.reset_plugins()
    assert names(manager.load_plugins(settings_with(cep_disabled_plugins="alpha"))) == sorted(["beta", *BUILTINS])


def test_an_argument_the_spec_does_not_have_is_rejected_at_registration(fresh_plugins):
    pm = manager.get_plugin_manager()
    try:
        with pytest.raises(PluginValidationError, match="group"):
            pm.register(WrongArgument, name="wrong_argument")
    finally:
        if pm.has_plugin("wrong_argument"):
            pm.unregister(name="wrong_argument")


def test_a_plugin_refused_at_registration_is_named_after_its_entry_point(installed, settings_with):
    bad = types.ModuleType("cep_fake_beta")
    bad.register_commands = WrongArgument.register_commands
    installed.setitem(sys.modules, "cep_fake_beta", bad)
    with pytest.raises(PluginValidationError) as error:
        manager.load_plugins(settings_with())
    assert manager.get_plugin_manager().get_name(error.value.plugin) is None  # pluggy never registered it
    assert manager.plugin_name(error.value.plugin) == "beta"
    assert manager.plugin_name(Misspelled) == "Misspelled"  # neither registered nor installed: its __name__


def test_trace_plugins_logs_hook_calls(fresh_plugins, settings_with, caplog):
    pm = manager.load_plugins(settings_with(cep_trace_plugins=True))
    with caplog.at_level(logging.INFO, logger="cep_automation.plugins.manager"):
        pm.hook.register_commands(cli=click.Group("cli"))
    assert any("register_commands" in record.getMessage() for record in caplog.records)


def test_no_tracing_by_default(fresh_plugins, settings_with, caplog):
    pm = manager.load_plugins(settings_with())
    with caplog.at_level(logging.INFO, logger="cep_automation.plugins.manager"):
        pm.hook.register_commands(cli=click.Group("cli"))
    assert not caplog.records


def test_reset_plugins_replaces_the_manager(fresh_plugins, settings_with):
    first = manager.load_plugins(settings_with())
    manager.reset_plugins()
    second = manager.get_plugin_manager()
    assert second is not first and names(second) == []
    assert manager.load_plugins(settings_with()) is second
