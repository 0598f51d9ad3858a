"""cep_automation plugin: Salesforce CRM (entry point ``salesforce``, group ``cep_automation``)."""

from __future__ import annotations

from cep_automation.plugins import Register, hookimpl
from cep_automation_salesforce.crm import SalesforceCRM, classify, lead_fields
from cep_automation_salesforce.settings import SalesforceSettings

__all__ = ["SalesforceCRM", "SalesforceSettings", "classify", "lead_fields", "register_integrations"]


@hookimpl
def register_integrations(register: Register) -> None:
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(SalesforceCRM(SalesforceSettings()))
