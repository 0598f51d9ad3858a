"""The operators' dashboard pages under ``/admin/``: overview, jobs, schedules and workers.

Pages are rendered on the server and work without JavaScript; the overview's queue counts refresh
themselves every few seconds from ``/admin/api/queues``. Dead letters have their own module.
"""

from __future__ import annotations

from typing import Any

import redis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from cep_automation.errors import ServiceUnavailable
from cep_automation.records.broker_state import HEARTBEAT_WINDOW_MS, workers_seen
from cep_automation.records.job_state import STATES
from cep_automation.web import dashboard_data as data
from cep_automation.web.jobs_api import MESSAGE_ID
from cep_automation.web.templating import render

UNAVAILABLE = (redis.RedisError, ServiceUnavailable)


def own_broker_ids() -> frozenset[str]:
    """This process's broker id: it beats when it enqueues, but it is not a worker."""
    from cep_automation.actors import broker

    return frozenset({broker.broker_id}) if hasattr(broker, "broker_id") else frozenset()


def attempt(read: Any, *args: Any) -> tuple[Any, str | None]:
    """``read(*args)``, or the reason it failed: a page still renders when Redis or PostgreSQL is down."""
    try:
        return read(*args), None
    except UNAVAILABLE as exc:
        return None, f"{type(exc).__name__}: {exc}"


def overview(request: Request) -> Response:
    queues, queue_error = attempt(data.queue_counts)
    workers, worker_error = attempt(workers_seen, own_broker_ids())
    schedules, schedule_error = attempt(data.schedules)
    return render(request, "overview.html", page="overview", queues=queues or [], workers=workers or [],
                  schedules=schedules or [], errors=[e for e in (queue_error, worker_error, schedule_error) if e])


def queues_json(request: Request) -> Response:
    queues, error = attempt(data.queue_counts)
    if error:
        return JSONResponse({"error": error}, status_code=503)
    return JSONResponse({"queues": queues}, headers={"Cache-Control": "no-store"})


def jobs(request: Request) -> Response:
    wanted = request.query_params.get("id", "").strip()
    if wanted:
        return RedirectResponse(f"/admin/jobs/{wanted}" if MESSAGE_ID.match(wanted) else "/admin/jobs", 303)
    state = request.query_params.get("state") or None
    state = state if state in STATES else None
    listed, error = attempt(data.recent_jobs, state)
    return render(request, "jobs.html", page="jobs", jobs=listed or [], state=state, states=STATES,
                  errors=[error] if error else [])


def job(request: Request) -> Response:
    message_id = request.path_params["message_id"]
    detail, error = attempt(data.job_detail, message_id) if MESSAGE_ID.match(message_id) else (None, None)
    if detail is None:
        status = 503 if error else 404
        return render(request, "error.html", status, page="jobs", title="Job not found",
                      message=error or f"No job {message_id} (unknown, or older than its retention).")
    return render(request, "job.html", page="jobs", **detail)


def schedules(request: Request) -> Response:
    listed, error = attempt(data.schedules)
    return render(request, "schedules.html", page="schedules", schedules=listed or [], errors=[error] if error else [])


def flow(request: Request) -> Response:
    """What waits for a limit, a turn or its share (``cep-automation flow`` on a page)."""
    from cep_automation.flow import status

    found, error = attempt(status.snapshot)
    held, held_error = attempt(data.held_jobs)
    return render(request, "flow.html", page="flow", flow=found or {"rates": [], "running": [], "ordering": [],
                                                                     "fair": []}, held=held,
                  errors=[e for e in (error, held_error) if e])


def workers(request: Request) -> Response:
    listed, error = attempt(workers_seen, own_broker_ids())
    return render(request, "workers.html", page="workers", workers=listed or [], errors=[error] if error else [],
                  window_s=HEARTBEAT_WINDOW_MS // 1000)
