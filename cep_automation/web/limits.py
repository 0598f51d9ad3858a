"""A request body size limit, enforced before and while the body is read (413 with a JSON error).

``Content-Length`` is checked first, so a declared oversized upload is refused without reading it;
a chunked body without a length is counted as it streams and cut off at the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cep_automation.web.errors import json_error

MAX_BODY_BYTES = 1024 * 1024  # the largest Meta delivery (1,000 changes) is a few hundred KiB


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when a streamed body passes the limit."""


class BodyLimit:
    """ASGI middleware refusing bodies over ``max_bytes``.

    Parameters:
      app: the application to protect.
      max_bytes: the largest body accepted.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_length(scope) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        seen, started = 0, False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self.refuse(scope, receive, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = json_error(413, f"request body is larger than {self.max_bytes} bytes",
                              headers={"Connection": "close"})
        await response(scope, receive, send)


def declared_length(scope: Scope) -> int:
    """The ``Content-Length`` header, 0 when absent or unreadable (then the streamed count decides)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
