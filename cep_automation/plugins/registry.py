"""Collects the integrations plugins register, with provenance, aliases and duplicates handled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from cep_automation.errors import PermanentError
from cep_automation.plugins.integration import KINDS, Integration
from cep_automation.plugins.manager import load_plugins
from cep_automation.settings import Settings

K = TypeVar("K", bound=Integration)


@dataclass
class Registered:
    """An integration and the plugin that registered it."""

    integration: Integration
    plugin: str


@dataclass
class Registry:
    """Integrations by kind; the first registration of a (kind, name) wins."""

    entries: dict[tuple[str, str], Registered] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    _enabled: dict[str, list[Integration]] = field(default_factory=dict, repr=False)  # kind → enabled, once

    def add(self, integration: Integration, plugin: str) -> None:
        if integration.kind not in KINDS:
            raise ValueError(f"plugin {plugin!r} registered {integration!r} of unknown kind; use one of {KINDS}")
        key = (integration.kind, integration.name)
        if key in self.entries:
            self.conflicts.append(
                f"{integration.kind}:{integration.name} from {plugin!r} ignored; "
                f"already registered by {self.entries[key].plugin!r}"
            )
            return
        self.entries[key] = Registered(integration, plugin)
        self._enabled.clear()

    def of_kind(self, kind: str, *, enabled_only: bool = True) -> list[Integration]:
        """The integrations of one kind, in registration order (which are enabled is settled once: the
        settings do not change while the process runs, and every step of every job asks)."""
        if enabled_only:
            found = self._enabled.get(kind)
            if found is None:
                found = self._enabled[kind] = [r.integration for (k, _), r in self.entries.items()
                                               if k == kind and r.integration.enabled]
            return list(found)
        return [r.integration for (k, _), r in self.entries.items() if k == kind]

    def get(self, kind: str, name: str) -> Integration | None:
        found = self.entries.get((kind, name))
        return found.integration if found else None

    def enabled(self, kind: type[K]) -> list[K]:
        """The enabled integrations of a kind (a class from :mod:`cep_automation.plugins.kinds`), typed as it."""
        return [i for i in self.of_kind(kind.kind) if isinstance(i, kind)]

    def first(self, kind: type[K]) -> K | None:
        """The first enabled integration of a kind (third-party plugins come before built-ins), or None."""
        found = self.enabled(kind)
        return found[0] if found else None

    def require(self, kind: type[K], *, doing: str) -> K:
        """The first enabled integration of a kind; raises :class:`PermanentError` saying why there is none.

        ``doing`` completes "cannot …" in the error, e.g. ``doing="fetch Meta lead 123"``.
        """
        found = self.first(kind)
        if found is None:
            raise PermanentError(f"cannot {doing}: {self.why_none(kind)}")
        return found

    def why_none(self, kind: type[Integration]) -> str:
        """Why no integration of a kind can run, in words for the audit log."""
        disabled = self.of_kind(kind.kind, enabled_only=False)
        if not disabled:
            return f"no {kind.kind.replace('_', ' ')} plugin installed"
        return "; ".join(f"{i.name}: {i.disabled_reason()}" for i in disabled)


def collect_integrations(settings: Settings) -> Registry:
    """Ask every plugin for its integrations (third-party first, built-ins last)."""
    manager = load_plugins(settings)
    registry = Registry()
    # Pluggy's call order (LIFO, trylast last) keeps third-party plugins ahead of built-ins.
    for impl in reversed(manager.hook.register_integrations.get_hookimpls()):
        kwargs = {"register": lambda i, _name=impl.plugin_name: registry.add(i, _name), "settings": settings}
        impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
    return registry
