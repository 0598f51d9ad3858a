"""The integrations this process uses, collected once from the plugins and reused by every job."""

from __future__ import annotations

import threading

from cep_automation.plugins.integration import Integration
from cep_automation.plugins.registry import Registry, collect_integrations
from cep_automation.settings import get_settings

_lock = threading.Lock()
_registry: Registry | None = None


def registry() -> Registry:
    """Every registered integration, enabled or not (built on first use)."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = collect_integrations(get_settings())
        return _registry


def reset_registry() -> None:
    """Forget the integrations (after settings change, e.g. in tests)."""
    global _registry
    with _lock:
        _registry = None


def enabled(kind: str) -> list[Integration]:
    """The enabled integrations of one kind, third-party plugins first."""
    return registry().of_kind(kind)


def why_none(kind: str) -> str:
    """Why no integration of ``kind`` can run, in words for the audit log."""
    disabled = registry().of_kind(kind, enabled_only=False)
    if not disabled:
        return f"no {kind.replace('_', ' ')} plugin installed"
    return "; ".join(f"{i.name}: {i.disabled_reason()}" for i in disabled)
