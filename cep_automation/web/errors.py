"""JSON errors for every route: one shape, ``{"error": "...", ...details}``, whatever went wrong.

Starlette answers unknown routes, wrong methods and crashes in plain text by default; the CMS and
operators' scripts parse our answers, so every error here is JSON with a sentence a person can act on.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cep_automation.redact import redact

logger = logging.getLogger("cep_automation.web.errors")


class ApiError(HTTPException):
    """An HTTP error with extra JSON fields (``errors``, ``known_jobs`` …) next to ``error``."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(status_code, message, headers)
        self.extra = extra


def json_error(status_code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status_code, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    extra = exc.extra if isinstance(exc, ApiError) else {}
    return json_error(exc.status_code, str(exc.detail), dict(exc.headers or {}), **extra)


async def server_error(request: Request, exc: Exception) -> Response:
    # Exception texts can carry personal data (a lead's email in a database error): redact before logging.
    logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, redact(str(exc)))
    return json_error(500, "internal error; the service log has the details")


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: http_error, Exception: server_error}
