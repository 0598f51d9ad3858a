"""CSRF protection for the dashboard's POST actions: a per-browser token and a same-origin check.

Basic auth is sent by the browser on every request, including ones a hostile page triggers, so each
form carries the token of a ``SameSite=Strict`` cookie (double submit) and the ``Origin`` (or, failing
that, ``Referer``) header must name this host.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "cep_csrf"
FIELD = "csrf_token"


def token_for(request: Request) -> str:
    """The browser's token, or a new one (set on the response by :func:`remember`)."""
    existing = request.cookies.get(COOKIE, "")
    return existing if len(existing) >= 32 else secrets.token_urlsafe(32)


def remember(request: Request, response: Response, token: str) -> None:
    if request.cookies.get(COOKIE) != token:
        secure = request.url.scheme == "https"
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/admin", secure=secure)


def same_origin(request: Request) -> bool:
    """True unless Origin/Referer names another host (browsers send one of them with a form POST)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    return urlsplit(source).netloc == request.url.netloc


def valid(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode()) and same_origin(request)
