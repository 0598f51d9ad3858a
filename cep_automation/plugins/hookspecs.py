"""Hook specifications of cep_automation. Plugins implement these with ``@cep_automation.hookimpl``."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("cep_automation")
hookimpl = pluggy.HookimplMarker("cep_automation")


@hookspec
def register_integrations(register, settings):  # type: ignore[no-untyped-def]
    """Register external-service integrations by calling ``register(integration)``.

    :param register: callable taking one :class:`~cep_automation.plugins.integration.Integration`.
    :param settings: the validated :class:`~cep_automation.settings.Settings`.
    """


@hookspec
def register_commands(cli):  # type: ignore[no-untyped-def]
    """Add click commands or groups to the ``cep-automation`` command line.

    :param cli: the root ``click.Group``.
    """
