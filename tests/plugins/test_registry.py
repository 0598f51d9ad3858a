"""The integration registry: provenance, first-wins duplicates, kinds, and third-party before built-ins."""

from __future__ import annotations

import pytest

import cep_automation
from cep_automation.plugins import Registry, collect_integrations, manager
from cep_automation.plugins.default_alerts import LogAlerts
from cep_automation.plugins.integration import Integration

BUILTINS = [manager.builtin_name(module) for module in manager.DEFAULT_PLUGINS]


class Pager(Integration):
    """An always-enabled alerts sink."""

    name = "pager"
    kind = "alerts"


class OtherLog(Integration):
    """An alerts sink that takes the built-in's name."""

    name = "log"
    kind = "alerts"


class Whatsapp(Integration):
    """Needs a setting the test sessions never set."""

    name = "whatsapp"
    kind = "messaging"
    required_settings = ("whatsapp_access_token", "whatsapp_phone_number_id")


class Sms(Integration):
    """A messaging integration that needs nothing."""

    name = "sms"
    kind = "messaging"


def registering(*integrations: type[Integration]) -> type:
    """A fake plugin class whose register_integrations registers the given integrations."""

    class Plugin:
        @cep_automation.hookimpl
        def register_integrations(self, register, settings):
            for integration in integrations:
                register(integration(settings))

    return Plugin


@pytest.fixture
def plugin(fresh_plugins):
    """Register fake plugins by name before loading; each is unregistered afterwards."""
    added = []

    def register(name: str, *integrations: type[Integration]) -> None:
        fresh_plugins.register(registering(*integrations)(), name=name)
        added.append(name)

    try:
        yield register
    finally:
        for name in added:
            if fresh_plugins.has_plugin(name):
                fresh_plugins.unregister(name=name)


def test_first_registration_of_a_kind_and_name_wins_and_the_conflict_is_reported(settings):
    registry = Registry()
    first, second = Pager(settings), Pager(settings)
    registry.add(first, "one")
    registry.add(second, "two")
    assert registry.get("alerts", "pager") is first
    assert registry.entries[("alerts", "pager")].plugin == "one"
    assert registry.conflicts == ["alerts:pager from 'two' ignored; already registered by 'one'"]


def test_same_name_in_another_kind_is_no_conflict(settings):
    registry = Registry()
    registry.add(Pager(settings), "one")
    registry.add(type("PagerSms", (Sms,), {"name": "pager"})(settings), "one")
    assert registry.conflicts == []
    assert registry.get("messaging", "pager") is not None and registry.get("alerts", "pager") is not None


def test_unknown_kind_raises_naming_the_plugin(settings):
    telepathy = type("Telepathy", (Integration,), {"name": "mind", "kind": "telepathy"})
    with pytest.raises(ValueError, match=r"plugin 'psychic' registered <Telepathy telepathy:mind> of unknown kind"):
        Registry().add(telepathy(settings), "psychic")


def test_of_kind_filters_disabled_integrations_unless_asked(settings):
    registry = Registry()
    for integration in (Whatsapp(settings), Sms(settings), Pager(settings)):
        registry.add(integration, "plugin")
    assert [i.name for i in registry.of_kind("messaging")] == ["sms"]
    assert [i.name for i in registry.of_kind("messaging", enabled_only=False)] == ["whatsapp", "sms"]
    assert registry.of_kind("crm", enabled_only=False) == []
    whatsapp = registry.get("messaging", "whatsapp")
    assert whatsapp.disabled_reason() == "not configured: set WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID"
    assert registry.get("messaging", "telegram") is None


def test_collect_records_which_plugin_registered_what(plugin, settings):
    plugin("acme", Whatsapp, Sms)
    registry = collect_integrations(settings)
    provenance = {key: r.plugin for key, r in registry.entries.items()}
    assert provenance[("messaging", "whatsapp")] == provenance[("messaging", "sms")] == "acme"
    assert provenance[("alerts", "log")] == "default_alerts"
    assert all(plugin in ("acme", *BUILTINS) for plugin in provenance.values())


def test_third_party_plugins_come_before_built_ins(plugin, settings):
    # Given a plugin registered before the built-ins load (as entry points are), which pluggy's
    # LIFO order alone would call after them
    plugin("acme", Pager)
    registry = collect_integrations(settings)
    # Then trylast keeps the built-in alert sink last
    assert [type(i) for i in registry.of_kind("alerts")] == [Pager, LogAlerts]


def test_a_third_party_plugin_overrides_a_built_in_of_the_same_name(plugin, settings):
    plugin("acme", OtherLog)
    registry = collect_integrations(settings)
    assert type(registry.get("alerts", "log")) is OtherLog
    assert registry.conflicts == ["alerts:log from 'default_alerts' ignored; already registered by 'acme'"]


def test_later_third_party_plugins_come_first(plugin, settings):
    plugin("early", Pager)
    plugin("late", type("LatePager", (Pager,), {}))
    registry = collect_integrations(settings)
    assert registry.entries[("alerts", "pager")].plugin == "late"
    assert "alerts:pager from 'early' ignored; already registered by 'late'" in registry.conflicts


def test_a_blocked_built_in_registers_nothing(fresh_plugins, settings_with):
    settings = settings_with(cep_disabled_plugins="default_alerts")
    sinks = collect_integrations(settings).of_kind("alerts", enabled_only=False)
    assert "log" not in [sink.name for sink in sinks] and len(sinks) == 2  # the webhook and email sinks remain


def test_a_plugin_with_an_unknown_kind_is_named_when_collecting(plugin, settings):
    plugin("psychic", type("Telepathy", (Integration,), {"name": "mind", "kind": "telepathy"}))
    with pytest.raises(ValueError, match="plugin 'psychic'"):
        collect_integrations(settings)
