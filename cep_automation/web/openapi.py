"""The OpenAPI 3.1 document of the HTTP service, written by hand; job payloads come from the actors.

Each declared actor gets its own ``POST /v1/jobs/<actor>`` path whose request body is its pydantic
model's JSON Schema (closed to unknown fields, as the actor's signature is), so schemathesis and
the CMS's client generators see exactly what each job accepts.
"""

from __future__ import annotations

import inspect
from typing import Any

import dramatiq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.domain.rollups import GRANULARITIES
from cep_automation.records.job_state import STATES
from cep_automation.web.jobs_api import IDEMPOTENCY_KEY


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def errors(*codes: int) -> dict[str, Any]:
    words = {400: "Malformed request", 401: "Missing or wrong token", 403: "Forbidden", 404: "Not found",
             409: "Conflict (e.g. a scheduled job already released)", 413: "Body or payload too large",
             422: "Invalid payload", 503: "Unavailable (token unset, Redis down, or the queue full: Retry-After)"}
    return {str(code): {"description": words[code], "content": json_content(ref("Error"))} for code in codes}


COMMON_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"}, "errors": {"type": "array", "items": {"type": "string"}},
        "known_jobs": {"type": "array", "items": {"type": "string"}}}},
    "JobAccepted": {"type": "object", "required": ["message_id", "actor", "queue", "deduplicated"], "properties": {
        "message_id": {"type": "string"}, "actor": {"type": "string"}, "queue": {"type": "string"},
        "deduplicated": {"type": "boolean"}, "scheduled": {"type": "boolean"},
        "run_at": {"type": "string", "format": "date-time"}, "deferred_s": {"type": "number"},
        "error": {"type": "string"}}},
    "Job": {"type": "object", "required": ["message_id", "state", "progress", "log"], "properties": {
        "message_id": {"type": "string"}, "state": {"enum": [*STATES, "scheduled", "cancelled"]},
        "actor": {"type": "string"}, "run_at": {"type": "string", "format": "date-time"},
        "queue": {"type": "string"}, "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "attempt": {"type": "integer"}, "result": {}, "error": {"type": "string"},
        "log": {"type": "array", "items": {"type": "string"}}, "updated_at": {"type": "number"}}},
    "Health": {"type": "object", "required": ["status", "failing", "checks"], "properties": {
        "status": {"enum": ["ok", "failing"]}, "failing": {"type": "array", "items": {"type": "string"}},
        "checks": {"type": "object"}}},
    "WebhookResult": {"type": "object", "properties": {
        name: {"type": "integer"} for name in ("received", "enqueued", "duplicates", "rejected")}},
    "StatusResult": {"type": "object", "properties": {
        name: {"type": "integer"} for name in ("statuses", "confirmed")}},
}


# Constraints enforced by a model's validator, which pydantic cannot show in the JSON Schema. Without them
# the document would promise that any string is a granularity. (A ``Literal`` field would make this unneeded.)
REFINEMENTS: dict[str, dict[str, Any]] = {
    "StatsRollupPayload": {"granularity": {"anyOf": [{"enum": list(GRANULARITIES)}, {"type": "null"}],
                                           "default": None}},
}


PayloadRef = tuple[str, bool]  # a payload's component name, and whether it has required fields


def payload_schemas(actors: list[Any]) -> tuple[dict[str, Any], dict[str, PayloadRef]]:
    """Component schemas of every actor's payload, and each actor's :data:`PayloadRef`."""
    components: dict[str, Any] = {}
    names: dict[str, PayloadRef] = {}
    for actor in actors:
        model = actor.options.get("schema")
        if model is None:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        schema["properties"].update(REFINEMENTS.get(model.__name__, {}))
        components[model.__name__] = {**schema, "additionalProperties": False}
        names[actor.actor_name] = (model.__name__, bool(schema.get("required")))
    return components, names


def signature_schema(actor: Any) -> dict[str, Any]:
    """For an actor without a pydantic schema: its keyword parameters, untyped, and which are required."""
    parameters = inspect.signature(actor.fn).parameters.values()
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return {"type": "object", "properties": {p.name: {} for p in named},
            "required": [p.name for p in named if p.default is p.empty],
            "additionalProperties": any(p.kind is p.VAR_KEYWORD for p in parameters)}


# Described in words, not as parameters: they exclude one another (one of the three), which a parameter list
# cannot say, and a generated request combining them would be a "valid" request answered 400.
TIMING = ("Query parameters, at most one of: `run_at` (ISO 8601 instant with its offset), `delay` (seconds from"
          " now), `debounce` (seconds of quiet; with `debounce_key`). A job due beyond CEP_SCHEDULE_HOLD_AFTER_S,"
          " or debounced, is held until then (`scheduled: true`) and can be cancelled with DELETE /v1/jobs/{id}."
          " Bad timing: 400.")


def enqueue_operation(actor: Any, schema: PayloadRef | None) -> dict[str, Any]:
    """``POST /v1/jobs/<actor>``; a payload with required fields needs a body."""
    body = ref(schema[0]) if schema else signature_schema(actor)
    needs_body = schema[1] if schema else bool(body["required"])
    return {"post": {
        "operationId": f"enqueue_{actor.actor_name.replace('.', '_')}",
        "summary": f"Enqueue {actor.actor_name} (queue {actor.queue_name})",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern}}],
        "description": TIMING,
        "requestBody": {"required": needs_body, "content": json_content(body)},
        "responses": {"202": {"description": "Enqueued, or held until run_at (or the message already holding the key)",
                              "content": json_content(ref("JobAccepted"))},
                      "429": {"description": "Accepted but deferred: the queue is busy, slow down (Retry-After)",
                              "content": json_content(ref("JobAccepted"))},
                      **errors(400, 401, 413, 422, 503)}}}



def fixed_paths() -> dict[str, Any]:
    public: dict[str, Any] = {"security": []}
    health = {"200": {"description": "All fine", "content": json_content(ref("Health"))},
              "503": {"description": "Something failing, named", "content": json_content(ref("Health"))}}
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/health": {"get": {**public, "operationId": "health", "responses": health}},
        "/ready": {"get": {**public, "operationId": "ready", "responses": health}},
        "/metrics": {"get": {"operationId": "metrics", "responses": {
            "200": {"description": "Prometheus text", "content": text}, **errors(401, 503)}}},
        "/openapi.json": {"get": {"operationId": "openapi", "responses": {
            "200": {"description": "This document", "content": json_content({"type": "object"})},
            **errors(401, 503)}}},
        "/v1/jobs/{message_id}": {"get": {
            "operationId": "job_status", "summary": "State, progress, log lines, result and error of a job",
            "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The job", "content": json_content(ref("Job"))},
                          **errors(401, 404, 503)}},
            "delete": {
            "operationId": "cancel_job", "summary": "Cancel a job held for later (run_at, delay or debounce)",
            "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Cancelled", "content": json_content({"type": "object"})},
                          **errors(401, 404, 409, 503)}}},
        "/webhooks/meta/leads": webhook_path(public, text),
        "/webhooks/whatsapp": webhook_path(public, text, "whatsapp_webhook", "StatusResult"),
    }


def webhook_path(public: dict[str, Any], text: dict[str, Any], name: str = "meta_webhook",
                 result: str = "WebhookResult") -> dict[str, Any]:
    hub = [{"name": f"hub.{name}", "in": "query", "required": False, "schema": {"type": "string"}}
           for name in ("mode", "verify_token", "challenge")]
    signature = {"name": "X-Hub-Signature-256", "in": "header", "required": False, "schema": {"type": "string"}}
    return {
        "get": {**public, "operationId": f"{name}_verify", "parameters": hub, "responses": {
            "200": {"description": "The challenge, echoed", "content": text}, **errors(403)}},
        "post": {**public, "operationId": f"{name}_deliver", "parameters": [signature],
                 "requestBody": {"required": True, "content": json_content({"type": "object"})},
                 "responses": {"200": {"description": "Accepted", "content": json_content(ref(result))},
                               **errors(400, 403, 413, 503)}},
    }


def build_document(broker: dramatiq.Broker) -> dict[str, Any]:
    actors = [broker.get_actor(name) for name in sorted(broker.actors)]
    schemas, names = payload_schemas(actors)
    paths = fixed_paths()
    for actor in actors:
        paths[f"/v1/jobs/{actor.actor_name}"] = enqueue_operation(actor, names.get(actor.actor_name))
    return {
        "openapi": "3.1.0",
        "info": {"title": "cep-automation", "version": "1", "description": "Job ingress, job status, health, "
                 "metrics, and the Meta Lead Ads and WhatsApp status webhooks of CEP Formación's automation service."},
        "paths": paths,
        "components": {"schemas": {**COMMON_SCHEMAS, **schemas},
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
    }


def document(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
