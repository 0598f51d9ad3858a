"""The HTTP service's application factory: routes, middleware and JSON errors in one place.

Middleware, outermost first: security headers, the body size limit (before anything reads a body),
then the token check, so nothing unauthenticated reaches a route except ``/health``, ``/ready`` and
the Meta webhook (which has its own signature check).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cep_automation import log_redaction, telemetry
from cep_automation.settings import Settings
from cep_automation.web import (
    consent_api,
    dashboard,
    dead_letter_views,
    dead_letters_api,
    gdpr_api,
    health,
    history,
    job_actions,
    jobs_api,
    lead_views,
    leads_api,
    mailchimp_webhook,
    openapi,
    stats,
    webhook,
    whatsapp_webhook,
)
from cep_automation.web.auth import TokenAuth
from cep_automation.web.errors import EXCEPTION_HANDLERS
from cep_automation.web.headers import SecurityHeaders
from cep_automation.web.limits import MAX_BODY_BYTES, BodyLimit
from cep_automation.web.templating import environment

STATIC = Path(__file__).parent / "static"
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]  # the endpoint answers 405 itself


def dashboard_routes() -> list[BaseRoute]:
    letter = "/dead-letters/{letter_id:int}"
    return [
        Route("/", dashboard.overview),
        Route("/api/queues", dashboard.queues_json),
        Route("/jobs", dashboard.jobs),
        Route("/jobs/clean", job_actions.clean, methods=["POST"]),
        Route("/jobs/{message_id}", dashboard.job),
        Route("/jobs/{message_id}/retry", job_actions.retry, methods=["POST"]),
        Route("/dead-letters", dead_letter_views.letters),
        Route("/dead-letters/retry", dead_letter_views.retry_many, methods=["POST"]),
        Route(letter, dead_letter_views.letter),
        Route(letter + "/retry", dead_letter_views.retry, methods=["POST"]),
        Route(letter + "/discard", dead_letter_views.discard, methods=["POST"]),
        Route("/schedules", dashboard.schedules),
        Route("/workers", dashboard.workers),
        Route("/flow", dashboard.flow),
        Route("/leads/{lead_id}", lead_views.page),
        Route("/leads/{lead_id}/{action}", lead_views.act, methods=["POST"]),
        Route("/history", history.page),
        Route("/stats", stats.page),
        Route("/stats/leads.csv", stats.leads_csv),
        Route("/stats/campaigns.csv", stats.campaigns_csv),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]


def routes() -> list[BaseRoute]:
    return [
        Route("/", lambda request: RedirectResponse("/admin/")),
        Route("/health", health.health),
        Route("/ready", health.ready),
        Route("/metrics", health.prometheus),
        Route("/openapi.json", openapi.document),
        Route("/v1/jobs/{name}", jobs_api.dispatch, methods=ANY_METHOD),
        Route("/v1/dead-letters", dead_letters_api.list_letters, methods=["GET"]),
        Route("/v1/dead-letters/{letter_id:int}", dead_letters_api.show, methods=["GET"]),
        Route("/v1/dead-letters/{letter_id:int}/retry", dead_letters_api.retry, methods=["POST"]),
        Route("/v1/dead-letters/{letter_id:int}/discard", dead_letters_api.discard, methods=["POST"]),
        Route("/v1/gdpr/erasures", gdpr_api.erasures, methods=["POST"]),
        Route("/v1/gdpr/subjects", gdpr_api.subjects, methods=["GET"]),
        Route("/v1/leads/{lead_id}/consent", consent_api.consent, methods=["POST"]),
        Route("/v1/leads/{lead_id}/status", leads_api.status, methods=["POST"]),
        Route("/v1/leads/{lead_id}", leads_api.show, methods=["GET"]),
        Route("/webhooks/mailchimp", mailchimp_webhook.endpoint, methods=["GET", "POST"]),
        Route("/webhooks/meta/leads", webhook.endpoint, methods=["GET", "POST"]),
        Route("/webhooks/whatsapp", whatsapp_webhook.endpoint, methods=["GET", "POST"]),
        Mount("/admin", routes=dashboard_routes()),
    ]


def create_app(settings: Settings, *, read_only: bool | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The service for ``settings``; ``read_only`` defaults to ``CEP_DASHBOARD_READ_ONLY``.

    Importing the actors here declares every job on the configured broker, so the OpenAPI document
    and the ingress know them all before the first request.
    """
    from cep_automation.actors import broker

    log_redaction.install()
    token = settings.cep_api_token.get_secret_value() if settings.cep_api_token else None
    app = Starlette(routes=routes(), exception_handlers=EXCEPTION_HANDLERS, middleware=[
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=max_body_bytes),
        Middleware(TokenAuth, token=token),
        *_tracing(),
    ])
    app.state.settings = settings
    app.state.read_only = settings.cep_dashboard_read_only if read_only is None else read_only
    app.state.templates = environment()
    app.state.openapi = openapi.build_document(broker)
    return app


def _tracing() -> list[Middleware]:
    """The ingress span, when tracing is on (the actors' import above has set it up)."""
    if not telemetry.ACTIVE:
        return []
    from cep_automation.telemetry.asgi import TracingASGI

    return [Middleware(TracingASGI)]
