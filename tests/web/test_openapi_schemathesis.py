"""The OpenAPI document, and schemathesis generating requests from it against the live service.

Every operation is exercised with a bounded number of generated examples; each answer must be
documented (status, content type, body schema), never a 5xx, and the token must really be required.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from cep_automation.actors import broker
from cep_automation.queues import BY_ACTOR
from cep_automation.web.openapi import build_document

MAX_EXAMPLES = 12


def project_document():
    """The served document, less the actors other test modules declare on the shared stub broker."""
    document = build_document(broker)
    for path in [p for p in document["paths"] if p.startswith("/v1/jobs/") and "{" not in p]:
        if path.removeprefix("/v1/jobs/") not in BY_ACTOR:
            del document["paths"][path]
    return document


# schemathesis' lazy fixture loader does not work with pytest 9 (it sets `_nodeid`), so the schema is
# loaded at import, from the same function the service uses; the last test checks that it serves it.
schema = schemathesis.openapi.from_dict(project_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_conforms_to_the_document(case, server, secrets):
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {secrets.api}"})


def test_document_describes_routes_and_each_actors_payload(client):
    document = client.get("/openapi.json").json()
    assert document == build_document(broker)
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert {"/health", "/ready", "/metrics", "/v1/jobs/{message_id}", "/webhooks/meta/leads"} <= set(paths)
    assert paths["/webhooks/meta/leads"]["post"]["security"] == [] and "get" in paths["/webhooks/meta/leads"]
    body = paths["/v1/jobs/stats.rollup"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/StatsRollupPayload"}
    stats = document["components"]["schemas"]["StatsRollupPayload"]
    assert set(stats["properties"]) == {"date", "granularity"} and stats["additionalProperties"] is False
    meta = document["components"]["schemas"]["MetaLeadgenPayload"]
    assert set(meta["required"]) == {"leadgen_id", "page_id", "form_id", "created_time"}


def test_actors_without_a_schema_are_described_by_their_signature():
    from types import SimpleNamespace

    from cep_automation.web.openapi import signature_schema

    def job(item, note=None, *, flag=False):
        pass

    def open_job(item, **extra):
        pass

    assert signature_schema(SimpleNamespace(fn=job)) == {
        "type": "object", "properties": {"item": {}, "note": {}, "flag": {}}, "required": ["item"],
        "additionalProperties": False}
    assert signature_schema(SimpleNamespace(fn=open_job))["additionalProperties"] is True
