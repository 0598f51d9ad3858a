"""Plugins: hook specifications, the manager that discovers them, and the integration registry."""

from __future__ import annotations

from cep_automation.plugins.hookspecs import hookimpl, hookspec
from cep_automation.plugins.integration import KINDS, Integration
from cep_automation.plugins.manager import (
    GROUP,
    describe_plugins,
    get_plugin_manager,
    load_plugins,
)
from cep_automation.plugins.registry import Registry, collect_integrations

__all__ = [
    "GROUP",
    "KINDS",
    "Integration",
    "Registry",
    "collect_integrations",
    "describe_plugins",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_plugins",
]
