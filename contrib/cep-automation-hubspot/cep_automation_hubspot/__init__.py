"""cep_automation plugin: HubSpot CRM (entry point ``hubspot``, group ``cep_automation``)."""

from __future__ import annotations

from cep_automation.plugins import Register, hookimpl
from cep_automation_hubspot.crm import ContactExists, HubSpotCRM, classify
from cep_automation_hubspot.settings import HubSpotSettings

__all__ = ["ContactExists", "HubSpotCRM", "HubSpotSettings", "classify", "register_integrations"]


@hookimpl
def register_integrations(register: Register) -> None:
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(HubSpotCRM(HubSpotSettings()))
