"""Each contrib CRM erases a person the way its API documents, against its fake."""

from __future__ import annotations

from cep_automation.plugins import Contact, DataSubject
from cep_automation_hubspot import HubSpotCRM, HubSpotSettings
from cep_automation_hubspot.testing import FakeHubSpot
from cep_automation_salesforce import SalesforceCRM, SalesforceSettings
from cep_automation_salesforce.testing import FakeSalesforce
from cep_automation_zoho import ZohoCRM, ZohoSettings
from cep_automation_zoho.testing import FakeZoho

ANA = Contact(email="ana@example.com", first_name="Ana", last_name="Zubiaurre", phone="+34611223344",
              external_id="9b1d0f3e-0000-4000-8000-000000000001")
SUBJECT = DataSubject(emails=("ana@example.com",), phones=("+34611223344",), lead_ids=(ANA.external_id,))


def test_hubspot_gdpr_delete():
    with FakeHubSpot(token="t", search_lag=False) as fake:
        crm = HubSpotCRM(HubSpotSettings(_env_file=None, token="t", base_url=fake.url))
        crm.upsert_lead(ANA)
        assert crm.erase_contact(SUBJECT).startswith("1 of 1") and fake.contacts == {}
        assert fake.requests[-1].path == "/crm/v3/objects/contacts/gdpr-delete"
        assert fake.requests[-1].json == {"objectId": "ana@example.com", "idProperty": "email"}
        assert crm.erase_contact(SUBJECT).startswith("0 of 1")  # again: nothing held, not an error


def test_salesforce_delete_by_external_id():
    with FakeSalesforce(token="t") as fake:
        crm = SalesforceCRM(SalesforceSettings(_env_file=None, token="t", instance_url=fake.url))
        crm.upsert_lead(ANA)
        assert crm.erase_contact(SUBJECT).startswith("1 of 1") and fake.leads == {}
        assert fake.requests[-1].method == "DELETE" and fake.requests[-1].path.endswith(ANA.external_id)
        assert crm.erase_contact(SUBJECT).startswith("0 of 1")


def test_zoho_search_then_delete():
    with FakeZoho(token="t") as fake:
        crm = ZohoCRM(ZohoSettings(_env_file=None, token="t", api_domain=fake.url))
        crm.upsert_lead(ANA)
        assert crm.erase_contact(SUBJECT).startswith("1 Lead(s) deleted") and fake.leads == {}
        assert [r.method for r in fake.requests[-2:]] == ["GET", "DELETE"]
        assert crm.erase_contact(SUBJECT) == "no Leads with their address"
