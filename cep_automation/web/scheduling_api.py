"""Timing and cancellation over HTTP: the query parameters of ``POST /v1/jobs/{job}`` and ``DELETE /v1/jobs/{id}``.

``?run_at=ISO8601`` (with its offset), ``?delay=SECONDS``, ``?debounce=SECONDS[&debounce_key=KEY]``: the body
stays the job's payload. Bad values are a 400 naming the parameter. ``DELETE /v1/jobs/{id}`` cancels a job still
held for later: 200, 404 (no such scheduled job), 409 (already released to its queue, or cancelled).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.db import connection
from cep_automation.errors import ScheduledJobNotFound, ScheduleError
from cep_automation.records import scheduled_jobs
from cep_automation.runtime import timing
from cep_automation.runtime.enqueue import cancel as cancel_job
from cep_automation.web.errors import ApiError

TIMING_PARAMETERS = ("run_at", "delay", "debounce", "debounce_key", "priority")


def timing_options(request: Request) -> dict[str, Any]:
    """The enqueue keywords the query asks for (``run_at``, ``delay`` in ms, ``debounce``, ``debounce_key``,
    ``priority``, ``ordering_key``, ``fairness_key``)."""
    query, options = request.query_params, dict[str, Any]()
    try:
        if "run_at" in query:
            options["run_at"] = timing.parse_instant(query["run_at"])
        if "delay" in query:
            options["delay"] = int(timing.parse_seconds(query["delay"], "delay") * 1000)
        if "debounce" in query:
            options["debounce"] = timing.parse_seconds(query["debounce"], "debounce")
        if "priority" in query:
            options["priority"] = timing.priority(query["priority"])
        options.update(timing.turn_keys(query.get("ordering_key"), query.get("fairness_key")))
    except ScheduleError as exc:
        raise ApiError(400, str(exc)) from None
    if "debounce_key" in query:
        if "debounce" not in query:
            raise ApiError(400, "debounce_key needs debounce=SECONDS")
        options["debounce_key"] = query["debounce_key"][:200]
    return options


def cancel(request: Request) -> Response:
    """``DELETE /v1/jobs/{id}``; blocking (PostgreSQL), so run in the thread pool."""
    message_id = request.path_params["name"]
    try:
        cancel_job(message_id)
    except ScheduledJobNotFound as exc:
        with connection() as conn:
            known = scheduled_jobs.get(conn, message_id) is not None
        raise ApiError(409 if known else 404, str(exc)) from None
    return JSONResponse({"message_id": message_id, "cancelled": True})


def scheduled_status(message_id: str) -> dict[str, Any] | None:
    """A held (or cancelled, or failed) job's state for ``GET /v1/jobs/{id}``, before it has any run record."""
    with connection() as conn:
        row = scheduled_jobs.get(conn, message_id)
    if row is None or row["status"] == "released":
        return None
    status = {"message_id": message_id, "state": row["status"], "actor": row["actor"], "queue": row["queue"],
              "progress": 0, "log": [], "run_at": row["run_at"].isoformat()}
    return status | ({"error": row["error"]} if row["error"] else {})
