"""What an integration is given when a person asks to be forgotten, and how it says it cannot erase them.

Every integration inherits :meth:`~cep_automation.plugins.integration.Integration.erase_contact`, which
raises :class:`ErasureUnsupported`: an integration that does not override it is reported to the operator as
"manual action needed", never as erased. One that overrides it deletes the person at the provider and says
what it did; "nothing held" is a success too.
"""

from __future__ import annotations

from dataclasses import dataclass

from cep_automation.errors import PermanentError


@dataclass(frozen=True)
class DataSubject:
    """The person to erase, as each service may know them.

    Parameters:
      emails: their addresses, trimmed and lower-cased.
      phones: their numbers in E.164 (``+34600123456``).
      lead_ids: our lead ids (the external id CRMs upsert by).
    """

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()


class ErasureUnsupported(PermanentError):
    """The service cannot erase a contact through its API: an operator must do it by hand."""
