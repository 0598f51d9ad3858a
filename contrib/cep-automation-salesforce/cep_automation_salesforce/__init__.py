"""cep_automation plugin: Salesforce CRM (entry point ``salesforce``, group ``cep_automation``)."""

from __future__ import annotations

import cep_automation
from cep_automation_salesforce.crm import SalesforceCRM, classify, lead_fields
from cep_automation_salesforce.settings import SalesforceSettings

__all__ = ["SalesforceCRM", "SalesforceSettings", "classify", "lead_fields", "register_integrations"]


@cep_automation.hookimpl
def register_integrations(register):  # type: ignore[no-untyped-def]
    # Read when the workers collect integrations, so a changed environment needs no reinstall.
    register(SalesforceCRM(SalesforceSettings()))
