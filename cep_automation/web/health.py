"""``GET /health``, ``GET /ready`` and ``GET /metrics``: what orchestrators and Prometheus poll.

``/health`` names each dependency and its state (200 when all are fine, 503 naming what failed);
``/ready`` is the cheap version (Redis and PostgreSQL answer, so a job can be enqueued and read). With
``BROKER_URL=amqp://…`` both also check RabbitMQ, and the queue counts are RabbitMQ's.
Both check the URLs of this app's settings, with short timeouts, so a dead dependency never hangs them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.db.redis_client import check_redis
from cep_automation.errors import ServiceUnavailable
from cep_automation.records import broker_state, metrics
from cep_automation.settings import Settings

TIMEOUT_S = 2


def redis_status(settings: Settings) -> dict[str, Any]:
    try:
        check_redis(settings.redis_url)
    except ServiceUnavailable as exc:
        return {"status": "failing", "error": str(exc)}
    return {"status": "ok"}


def postgres_status(settings: Settings) -> dict[str, Any]:
    info = psycopg.conninfo.conninfo_to_dict(settings.database_url)
    where = f"{info.get('host') or 'local socket'}:{info.get('port', 5432)}/{info.get('dbname', '')}"
    try:
        with psycopg.connect(settings.database_url, connect_timeout=TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"status": "failing", "error": f"PostgreSQL is unreachable at {where}: {first_line}"}
    return {"status": "ok"}


def rabbitmq_status(settings: Settings) -> dict[str, Any]:
    try:
        broker_state.check_rabbitmq(settings.effective_broker_url)
    except ServiceUnavailable as exc:
        return {"status": "failing", "error": str(exc)}
    return {"status": "ok"}


def dependencies(settings: Settings) -> dict[str, dict[str, Any]]:
    """Redis and PostgreSQL, and RabbitMQ when it carries the queues (Redis still holds our own state)."""
    checks = {"redis": redis_status(settings), "postgresql": postgres_status(settings)}
    if broker_state.uses_rabbitmq(settings.effective_broker_url):
        checks["rabbitmq"] = rabbitmq_status(settings)
    return checks


def queue_status() -> dict[str, Any]:
    """Waiting, delayed and dead counts per queue (needs the broker and PostgreSQL)."""
    try:
        lengths = metrics.queue_lengths()
    except Exception as exc:  # any failure to count is reported, never raised: /health must answer
        return {"status": "failing", "error": f"queue lengths unavailable: {type(exc).__name__}: {exc}"}
    queues: dict[str, dict[str, int]] = {}
    for (queue, state), count in sorted(lengths.items()):
        queues.setdefault(queue, {})[state] = count
    return {"status": "ok", "queues": queues}


def answer(checks: dict[str, dict[str, Any]]) -> JSONResponse:
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    body = {"status": "failing" if failing else "ok", "failing": failing, "checks": checks}
    return JSONResponse(body, status_code=503 if failing else 200, headers={"Cache-Control": "no-store"})


def health(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    checks = dependencies(settings)
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    checks["queues"] = {"status": "failing", "error": f"not counted: {', '.join(failing)} failing"} if failing \
        else queue_status()
    return answer(checks)


def ready(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return answer(dependencies(settings))


def prometheus(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
