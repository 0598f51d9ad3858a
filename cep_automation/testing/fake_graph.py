"""The base of the Meta Graph fakes (WhatsApp Cloud API, Lead Ads, Marketing API insights).

It serves ``/{version}/…`` (point ``WHATSAPP_BASE_URL`` or ``META_GRAPH_BASE_URL`` at
:attr:`FakeGraph.base_url`), checks the access token (``Authorization: Bearer`` or ``access_token``), and
answers errors with the Graph error object, ``{"error": {message: "(#code) title", type, code,
error_subcode?, error_data?, fbtrace_id, is_transient?}}``, the status a subclass documents per code.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from cep_automation.testing.fakes import FakeServer, Recorded, Reply


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(15)


def graph_error(code: int, title: str, *, subcode: int | None = None, error_type: str = "OAuthException",
                error_data: dict[str, Any] | None = None, is_transient: bool | None = None) -> dict[str, Any]:
    """A Graph error body; ``message`` reads ``(#code) title`` as Meta's usually does."""
    error: dict[str, Any] = {"message": f"(#{code}) {title}", "type": error_type, "code": code,
                             "fbtrace_id": fbtrace_id()}
    if subcode is not None:
        error["error_subcode"] = subcode
    if error_data is not None:
        error["error_data"] = error_data
    if is_transient is not None:
        error["is_transient"] = is_transient
    return {"error": error}


class FakeGraph(FakeServer):
    """Graph on 127.0.0.1; subclasses implement :meth:`route` for paths below the version.

    Parameters:
      token: the access token requests must carry (else error 190, HTTP 401).
      version: the Graph version in the path, e.g. ``v23.0``.
    """

    # Subclasses fill these from their API's error table: titles, usual HTTP status, is_transient codes.
    TITLES: ClassVar[dict[int, str]] = {}
    STATUSES: ClassVar[dict[int, int]] = {}
    TRANSIENT: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, token: str = "test-token", version: str = "v23.0") -> None:
        super().__init__()
        self.token = token
        self.version = version

    @property
    def base_url(self) -> str:
        """The value for ``WHATSAPP_BASE_URL`` / ``META_GRAPH_BASE_URL``."""
        return f"{self.url}/{self.version}"

    def error(self, code: int, http_status: int | None = None, *, title: str | None = None,
              headers: dict[str, str] | None = None, **fields: Any) -> Reply:
        """The reply for error ``code`` with its documented title and usual status (else 400)."""
        body = graph_error(code, title or self.TITLES.get(code, "An unknown error occurred"),
                           is_transient=fields.pop("is_transient", code in self.TRANSIENT), **fields)
        return Reply(http_status or self.STATUSES.get(code, 400), body, headers or {})

    def fail_with_code(self, code: int, http_status: int | None = None, *, times: int = 1,
                       headers: dict[str, str] | None = None, **fields: Any) -> None:
        """Answer the next ``times`` requests with error ``code`` (``subcode=``, ``error_data=``, ``title=``)."""
        reply = self.error(code, http_status, headers=headers, **fields)
        self.fail_next(reply.status, reply.body, reply.headers, times=times)

    def handle(self, request: Recorded) -> Reply:
        prefix = f"/{self.version}/"
        if not request.path.startswith(prefix):
            return self.error(2500, 400, title=f"Unknown path components: {request.path}", is_transient=False)
        if self.token_of(request) != self.token:
            return self.error(190, 401, title="Invalid OAuth access token - Cannot parse access token",
                              is_transient=False)
        return self.route(request, "/" + request.path[len(prefix):])

    def route(self, request: Recorded, path: str) -> Reply:
        """Answer a request for ``path`` (without the version); subclasses override."""
        return self.unsupported(request, path)

    def unsupported(self, request: Recorded, path: str) -> Reply:
        title = (f"Unsupported {request.method.lower()} request. Object with ID '{path.strip('/')}' does not "
                 "exist, cannot be loaded due to missing permissions, or does not support this operation.")
        return self.error(100, 400, title=title, subcode=33, error_type="GraphMethodException", is_transient=False)

    @staticmethod
    def token_of(request: Recorded) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):]
        tokens = request.query.get("access_token")
        return tokens[0] if tokens else None
