"""The integrations this process uses, collected once from the plugins and reused by every job.

Actors ask by kind class and get that type back::

    crms = integrations.enabled(CRM)                      # list[CRM]
    storage = integrations.require(Storage, doing="store the backup")  # Storage, or PermanentError
"""

from __future__ import annotations

import threading
from typing import TypeVar

from cep_automation.plugins.integration import Integration
from cep_automation.plugins.registry import Registry, collect_integrations
from cep_automation.settings import get_settings

K = TypeVar("K", bound=Integration)

_lock = threading.Lock()
_registry: Registry | None = None


def registry() -> Registry:
    """Every registered integration, enabled or not (built on first use)."""
    global _registry
    if _registry is not None:  # every step asks: no lock once it is built
        return _registry
    with _lock:
        if _registry is None:
            _registry = collect_integrations(get_settings())
        return _registry


def reset_registry() -> None:
    """Forget the integrations (after settings change, e.g. in tests)."""
    global _registry
    with _lock:
        _registry = None


def enabled(kind: type[K]) -> list[K]:
    """The enabled integrations of one kind, third-party plugins first."""
    return registry().enabled(kind)


def first(kind: type[K]) -> K | None:
    """The first enabled integration of one kind, or None."""
    return registry().first(kind)


def require(kind: type[K], *, doing: str) -> K:
    """The first enabled integration of one kind; a :class:`PermanentError` saying why when there is none."""
    return registry().require(kind, doing=doing)


def why_none(kind: type[Integration]) -> str:
    """Why no integration of ``kind`` can run, in words for the audit log."""
    return registry().why_none(kind)
