"""cep_automation: CEP Formación's background jobs as Dramatiq actors with pluggy integrations."""

from __future__ import annotations

from cep_automation.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
