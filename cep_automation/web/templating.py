"""Server-rendered pages: one autoescaping Jinja environment, redaction filters, and the page frame.

Everything a page prints that could hold personal data or a secret (errors, tracebacks, log lines,
payloads, results) goes through the ``redact`` or ``pretty`` filter, so no full email or phone number
and no token reaches a screen.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cep_automation.redact import redact
from cep_automation.web import csrf

TEMPLATES = Path(__file__).parent / "templates"
FLASH = "cep_flash"
NAV = (("overview", "/admin/", "Overview"), ("jobs", "/admin/jobs", "Jobs"),
       ("dead", "/admin/dead-letters", "Dead letters"), ("schedules", "/admin/schedules", "Schedules"),
       ("workers", "/admin/workers", "Workers"), ("flow", "/admin/flow", "Flow"),
       ("history", "/admin/history", "History"), ("stats", "/admin/stats", "Estadísticas"))
NAV_LANG = {"stats": "es"}  # the marketing team's pages are in Spanish; the operators' in English
# No inline script or style, no other origin: an injected tag could do nothing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def pretty(value: Any) -> str:
    """JSON, indented and redacted."""
    return str(redact(json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)))


def when(value: Any) -> str:
    """A UTC timestamp (datetime or Unix seconds) as ``2026-11-25 10:00:00 UTC``."""
    if value in (None, "", 0):
        return "—"
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return str(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(redact=lambda text: redact(str(text or "")), pretty=pretty, when=when)
    return env


def flash(response: Response, message: str) -> Response:
    """Show ``message`` on the next page (a short-lived cookie, so nothing rides in the URL)."""
    notice = quote(redact(message)[:300])  # the cookie is stored by the browser: no personal data in it either
    response.set_cookie(FLASH, notice, max_age=60, httponly=True, samesite="strict", path="/admin")
    return response


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with the frame's context: navigation, CSRF token, read-only flag and any flashed notice."""
    token = csrf.token_for(request)
    notice = unquote(request.cookies.get(FLASH, ""))
    html = request.app.state.templates.get_template(template).render(
        nav=NAV, nav_lang=NAV_LANG, csrf_field=csrf.FIELD, csrf_token=token, read_only=request.app.state.read_only,
        notice=notice, **context)
    response = HTMLResponse(html, status_code=status_code,
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})
    csrf.remember(request, response, token)
    if notice:
        response.delete_cookie(FLASH, path="/admin")
    return response
