"""Hook specifications of cep_automation. Plugins implement these with ``@cep_automation.hookimpl``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from cep_automation.plugins.integration import Integration

if TYPE_CHECKING:
    import click

    from cep_automation.settings import Settings

hookspec = pluggy.HookspecMarker("cep_automation")
hookimpl = pluggy.HookimplMarker("cep_automation")

# The type of ``register_integrations``' ``register`` argument, for plugins that annotate their hooks.
Register = Callable[[Integration], None]


@hookspec
def register_integrations(register: Register, settings: Settings) -> None:
    """Register external-service integrations by calling ``register(integration)``.

    :param register: callable taking one :class:`~cep_automation.plugins.integration.Integration`.
    :param settings: the validated :class:`~cep_automation.settings.Settings`.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``cep-automation`` command line.

    :param cli: the root ``click.Group``.
    """
