"""cep_automation plugin: HubSpot CRM (entry point ``hubspot``, group ``cep_automation``)."""

from __future__ import annotations

import cep_automation
from cep_automation_hubspot.crm import ContactExists, HubSpotCRM, classify
from cep_automation_hubspot.settings import HubSpotSettings

__all__ = ["ContactExists", "HubSpotCRM", "HubSpotSettings", "classify", "register_integrations"]


@cep_automation.hookimpl
def register_integrations(register):  # type: ignore[no-untyped-def]
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(HubSpotCRM(HubSpotSettings()))
