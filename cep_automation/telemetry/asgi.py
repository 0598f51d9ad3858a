"""The HTTP ingress span (extra ``otel``): one server span per request, the parent of the jobs it enqueues.

A caller's ``traceparent`` header is honoured, so a trace may start in the CMS. The span's name is the method
and the path (ids only; the query string, which may carry an email, is left out).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cep_automation.redact import redact
from cep_automation.telemetry import otel


class TracingASGI:
    """ASGI middleware: a server span around each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
        path = redact(scope.get("path", ""))
        attributes: dict[str, Any] = {"http.request.method": scope["method"], "url.path": path}
        parent = otel.extract({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
        server = otel.tracer().start_span(f"{scope['method']} {path}", context=parent, kind=otel.SpanKind.SERVER,
                                          attributes=attributes)
        token = otel.context.attach(otel.trace.set_span_in_context(server))

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                server.set_attribute("http.response.status_code", message["status"])
            await send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            otel.context.detach(token)
            otel.ended(server, failure)
