"""The base class of everything a plugin registers: one external service of one kind."""

from __future__ import annotations

from typing import Any, ClassVar

from cep_automation.plugins.erasure import DataSubject, ErasureUnsupported

# The kinds of integration a plugin may register; a job asks for integrations by kind.
KINDS = (
    "email_marketing",
    "transactional_email",
    "messaging",
    "crm",
    "ads",
    "analytics",
    "llm",
    "storage",
    "alerts",
)


class Integration:
    """An external service a job can call.

    Subclasses set ``name`` and ``kind`` and list the settings they cannot work without in
    ``required_settings``; an integration missing one is disabled and says which. A plugin with
    its own settings class (``HUBSPOT_TOKEN`` read as ``token``) sets ``settings_prefix`` to the
    class's environment prefix, so the reason names the variable an operator sets.

    Parameters:
      settings: the core :class:`~cep_automation.settings.Settings`, or the plugin's own settings object.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    required_settings: ClassVar[tuple[str, ...]] = ()
    settings_prefix: ClassVar[str] = ""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def variable(self, setting: str) -> str:
        """The environment variable of a setting: ``token`` → ``HUBSPOT_TOKEN`` with prefix ``HUBSPOT_``."""
        return self.settings_prefix + setting.upper()

    def disabled_reason(self) -> str | None:
        """Why this integration cannot run, or None when it can."""
        missing = [self.variable(name) for name in self.required_settings if not getattr(self.settings, name, None)]
        if missing:
            return "not configured: set " + ", ".join(missing)
        return None

    @property
    def enabled(self) -> bool:
        return self.disabled_reason() is None

    def erase_contact(self, subject: DataSubject) -> str:
        """Erase ``subject`` from the service for good (GDPR art. 17); return what was done, in words.

        The default says it cannot: ``gdpr.erase`` then records "manual action needed" for this service.
        """
        raise ErasureUnsupported(f"{self.name}: this integration cannot erase contacts through its API")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}:{self.name}>"
