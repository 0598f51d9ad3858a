"""The plugin manager: entry points of group ``cep_automation`` first, then the built-ins.

Nothing loads on import; :func:`load_plugins` does, and may be called any number of times.
Operators steer loading with ``CEP_DISABLED_PLUGINS`` (blocklist), ``CEP_LOAD_PLUGINS``
(allowlist of entry-point names; empty loads none) and ``CEP_TRACE_PLUGINS`` (log hook calls).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import dataclass
from importlib import metadata

import pluggy

from cep_automation.plugins import hookspecs
from cep_automation.settings import Settings

GROUP = "cep_automation"
# Built-in plugins, in alphabetical order (each registers with trylast, so third-party plugins come first).
DEFAULT_PLUGINS = (
    "cep_automation.plugins.alerts",
    "cep_automation.plugins.crm_webhook",
    "cep_automation.plugins.default_alerts",
    "cep_automation.plugins.ga4",
    "cep_automation.plugins.llm",
    "cep_automation.plugins.mailchimp",
    "cep_automation.plugins.mandrill",
    "cep_automation.plugins.meta",
    "cep_automation.plugins.s3",
    "cep_automation.plugins.whatsapp",
)

logger = logging.getLogger("cep_automation.plugins.manager")


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


pm = _new_manager()

# Tests set this to False so plugins installed in the environment never leak into them.
LOAD_ENTRYPOINTS = True

_lock = threading.Lock()
_loaded = False


@dataclass(frozen=True)
class PluginInfo:
    """One plugin found at start-up, loaded or not."""

    name: str
    source: str
    enabled: bool
    reason: str = ""


def builtin_name(module: str) -> str:
    """Built-ins are named by their module's last part, e.g. ``default_alerts``."""
    return module.rsplit(".", 1)[-1]


def get_plugin_manager() -> pluggy.PluginManager:
    """The current manager (replaced by :func:`reset_plugins`, so do not cache it)."""
    return pm


def load_plugins(settings: Settings) -> pluggy.PluginManager:
    """Load entry points, then built-ins, then verify every hookimpl matches a spec."""
    global _loaded
    with _lock:
        if _loaded:
            return pm
        for name in settings.disabled_plugins:
            pm.set_blocked(name)
        if LOAD_ENTRYPOINTS:
            _load_entrypoints(settings)
        for module in DEFAULT_PLUGINS:
            name = builtin_name(module)
            if not pm.is_blocked(name) and pm.get_plugin(name) is None:
                pm.register(importlib.import_module(module), name=name)
        pm.check_pending()
        if settings.cep_trace_plugins:
            pm.trace.root.setwriter(logger.info)
            pm.enable_tracing()
        _loaded = True
        return pm


def _load_entrypoints(settings: Settings) -> None:
    if settings.cep_load_plugins is None:
        pm.load_setuptools_entrypoints(GROUP)
        return
    for name in (n.strip() for n in settings.cep_load_plugins.split(",")):
        if name:
            pm.load_setuptools_entrypoints(GROUP, name=name)


def reset_plugins() -> None:
    """Unregister everything (tests that load plugins with other settings use this)."""
    global _loaded, pm
    with _lock:
        pm = _new_manager()
        _loaded = False


def describe_plugins(settings: Settings) -> list[PluginInfo]:
    """Every plugin found — installed entry points and built-ins — and whether it is enabled."""
    load_plugins(settings)
    found = []
    for dist, ep in _installed_entrypoints():
        found.append(_info(ep.name, f"entry point {ep.value} ({dist})", settings))
    for module in DEFAULT_PLUGINS:
        found.append(_info(builtin_name(module), f"built-in {module}", settings))
    # Plugins registered by hand (tests, embedding applications).
    known = {info.name for info in found}
    for name, plugin in pm.list_name_plugin():
        # A blocked name sits in pluggy's table with plugin None: it was never registered.
        if plugin is not None and name not in known:
            found.append(PluginInfo(name, "registered at run time", True))
    return found


def _info(name: str, source: str, settings: Settings) -> PluginInfo:
    if name in settings.disabled_plugins:
        return PluginInfo(name, source, False, "blocked by CEP_DISABLED_PLUGINS")
    if pm.get_plugin(name) is not None:
        return PluginInfo(name, source, True)
    if not LOAD_ENTRYPOINTS:
        return PluginInfo(name, source, False, "entry points are not loaded in tests")
    return PluginInfo(name, source, False, "not in CEP_LOAD_PLUGINS")


def plugin_name(plugin: object) -> str:
    """The name operators know a plugin by, also for one pluggy refused to register.

    pluggy validates a plugin before registering it, so a plugin rejected for a bad hook
    signature has no name in the manager; the installed entry point that loaded it has.
    """
    name = pm.get_name(plugin)
    if name:
        return name
    for _dist, ep in _installed_entrypoints():
        target = sys.modules.get(ep.module)
        for attr in ep.attr.split(".") if ep.attr else ():
            target = getattr(target, attr, None)
        if target is not None and target is plugin:
            return ep.name
    return str(getattr(plugin, "__name__", repr(plugin)))


def _installed_entrypoints() -> list[tuple[str, metadata.EntryPoint]]:
    found = []
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == GROUP:
                found.append((f"{dist.metadata['Name']} {dist.version}", ep))
    return sorted(found, key=lambda pair: pair[1].name)
