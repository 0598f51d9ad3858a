"""A plugin whose hook name is misspelled (``register_integration``, no final s).

Pluggy would silently never call it; ``check_pending()`` at start-up turns that into an error.
"""

from __future__ import annotations

import cep_automation


@cep_automation.hookimpl
def register_integration(register):  # type: ignore[no-untyped-def]
    raise AssertionError("a misspelled hook must never be called")
