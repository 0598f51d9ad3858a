"""cep_automation plugin: Zoho CRM (entry point ``zoho``, group ``cep_automation``)."""

from __future__ import annotations

import cep_automation
from cep_automation_zoho.crm import ZohoCRM, classify, lead_record
from cep_automation_zoho.settings import ZohoSettings

__all__ = ["ZohoCRM", "ZohoSettings", "classify", "lead_record", "register_integrations"]


@cep_automation.hookimpl
def register_integrations(register):  # type: ignore[no-untyped-def]
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(ZohoCRM(ZohoSettings()))
