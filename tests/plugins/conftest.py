"""Fixtures for the plugin-manager tests: settings on this session's services, and a fresh manager."""

from __future__ import annotations

import pytest

from cep_automation.plugins import manager
from cep_automation.settings import get_settings, load_settings


@pytest.fixture
def settings_with(cep_services):
    """Build settings on this session's services with some plugin variables (``cep_load_plugins=...``)."""

    def make(**values):
        return load_settings(redis_url=cep_services.redis_url, database_url=cep_services.database_url, **values)

    return make


@pytest.fixture
def settings(settings_with):
    """Settings on this session's services with no plugin variables."""
    return settings_with()


@pytest.fixture
def fresh_plugins():
    """An empty plugin manager for the test; afterwards a freshly loaded one, as at boot."""
    manager.reset_plugins()
    try:
        yield manager.get_plugin_manager()
    finally:
        manager.reset_plugins()
        manager.load_plugins(get_settings())
