"""cep_automation plugin: Zoho CRM (entry point ``zoho``, group ``cep_automation``)."""

from __future__ import annotations

from cep_automation.plugins import Register, hookimpl
from cep_automation_zoho.crm import ZohoCRM, classify, lead_record
from cep_automation_zoho.settings import ZohoSettings

__all__ = ["ZohoCRM", "ZohoSettings", "classify", "lead_record", "register_integrations"]


@hookimpl
def register_integrations(register: Register) -> None:
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(ZohoCRM(ZohoSettings()))
