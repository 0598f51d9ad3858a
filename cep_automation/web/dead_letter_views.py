"""Dead letters in the dashboard: list with filters, detail with traceback, retry, discard, bulk retry.

The actions are the ones ``cep-automation dlq`` runs (:mod:`cep_automation.records.dead_letters`). Each POST
needs the CSRF token and a same-origin request, and is refused while the dashboard is read-only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cep_automation.db import connection
from cep_automation.errors import CepError
from cep_automation.queues import BY_ACTOR
from cep_automation.records import dead_letters
from cep_automation.records.broker_state import queue_names
from cep_automation.web import csrf
from cep_automation.web.dashboard import attempt
from cep_automation.web.templating import flash, render

PAGE_SIZE = 50
BULK_LIMIT = 10_000


def filters(query: Any) -> dict[str, Any]:
    """The list's filters, unknown values dropped."""
    status = query.get("status", "dead")
    offset = query.get("offset", "0")
    return {"status": status if status in (*dead_letters.STATUSES, "all") else "dead",
            "queue": query.get("queue") if query.get("queue") in queue_names() else None,
            "actor": query.get("actor") if query.get("actor") in BY_ACTOR else None,
            "offset": int(offset) if offset.isdigit() else 0}


def list_rows(chosen: dict[str, Any]) -> list[dict[str, Any]]:
    with connection() as conn:
        return dead_letters.list_letters(conn, status=None if chosen["status"] == "all" else chosen["status"],
                                        queue=chosen["queue"], actor=chosen["actor"], limit=PAGE_SIZE,
                                        offset=chosen["offset"])


def letters(request: Request) -> Response:
    chosen = filters(request.query_params)
    rows, error = attempt(list_rows, chosen)
    return render(request, "dead_letters.html", page="dead", letters=rows or [], filters=chosen,
                  statuses=(*dead_letters.STATUSES, "all"), queues=queue_names(), actors=sorted(BY_ACTOR),
                  page_size=PAGE_SIZE, errors=[error] if error else [])


def read_letter(letter_id: int) -> dict[str, Any]:
    with connection() as conn:
        row = dead_letters.get_letter(conn, letter_id)
        row["retries"] = dead_letters.retries(conn, letter_id)
        return row


def letter(request: Request) -> Response:
    letter_id = request.path_params["letter_id"]
    try:
        row, error = attempt(read_letter, letter_id)
    except dead_letters.DeadLetterNotFound as exc:
        return render(request, "error.html", 404, page="dead", title="Dead letter not found", message=str(exc))
    if error:
        return render(request, "error.html", 503, page="dead", title="Unavailable", message=error)
    return render(request, "dead_letter.html", page="dead", letter=row)


async def checked_form(request: Request, page: str = "dead") -> dict[str, list[str]] | Response:
    """The submitted form, or the page that refuses it (read-only mode, CSRF); ``page`` is the nav entry."""
    if request.app.state.read_only:
        return render(request, "error.html", 403, page=page, title="Read-only",
                      message="The dashboard is read-only (CEP_DASHBOARD_READ_ONLY): use `cep-automation dlq`.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if not csrf.valid(request, (form.get(csrf.FIELD) or [""])[0]):
        return render(request, "error.html", 403, page=page, title="Refused",
                      message="The form's security token is missing or stale: reload the page and try again.")
    return form


def retry_letters(letter_ids: list[int]) -> tuple[list[str], dict[int, str]]:
    """Retry each letter; one that cannot be retried does not stop the others. Returns new ids, and why not."""
    from cep_automation.runtime.enqueue import retry_dead_letter

    retried, failed = [], {}
    with connection() as conn:
        for letter_id in letter_ids:
            try:
                retried.append(retry_dead_letter(conn, letter_id))
            except CepError as exc:
                failed[letter_id] = str(exc)
    return retried, failed


async def retry(request: Request) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    letter_id = request.path_params["letter_id"]
    retried, failed = await run_in_threadpool(retry_letters, [letter_id])
    notice = f"Retried as message {retried[0]}." if retried else f"Not retried: {failed[letter_id]}"
    return flash(RedirectResponse(f"/admin/dead-letters/{letter_id}", 303), notice)


def bulk_ids(form: dict[str, list[str]]) -> list[int]:
    """The ticked letters, or every dead one matching the filters when "all matching" was asked."""
    if (form.get("scope") or [""])[0] != "matching":
        return [int(value) for value in form.get("ids", []) if value.isdigit()]
    chosen = filters({name: values[0] for name, values in form.items()} | {"status": "dead", "offset": "0"})
    with connection() as conn:
        rows = dead_letters.list_letters(conn, queue=chosen["queue"], actor=chosen["actor"], limit=BULK_LIMIT)
    return [row["id"] for row in rows]


async def retry_many(request: Request) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    ids = await run_in_threadpool(bulk_ids, form)
    retried, failed = await run_in_threadpool(retry_letters, ids)
    why = "; ".join(f"#{letter_id}: {reason}" for letter_id, reason in failed.items())
    notice = f"Retried {len(retried)} dead letter(s)." + (f" Not retried: {why}" if failed else "")
    return flash(RedirectResponse("/admin/dead-letters", 303), notice if ids else "No dead letter was selected.")


def discard_letter(letter_id: int, reason: str) -> str:
    try:
        with connection() as conn:
            dead_letters.discard(conn, letter_id, reason)
    except CepError as exc:
        return f"Not discarded: {exc}"
    return "Discarded."


async def discard(request: Request) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    letter_id = request.path_params["letter_id"]
    notice = await run_in_threadpool(discard_letter, letter_id, (form.get("reason") or [""])[0][:1000])
    return flash(RedirectResponse(f"/admin/dead-letters/{letter_id}", 303), notice)
