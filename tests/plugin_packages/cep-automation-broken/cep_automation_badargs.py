"""A plugin whose hook asks for an argument the spec does not pass (``group``).

pluggy refuses it when it is registered, before it gets a name in the plugin manager.
"""

from __future__ import annotations

import cep_automation


@cep_automation.hookimpl
def register_commands(cli, group):  # type: ignore[no-untyped-def]
    raise AssertionError("a hook with an unknown argument must never be called")
