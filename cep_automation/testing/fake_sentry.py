"""A local Sentry ingest endpoint: ``POST /api/<project>/envelope/`` (the SDK's envelopes, maybe gzipped).

Point ``SENTRY_DSN`` at :meth:`FakeSentry.dsn`; :attr:`envelopes` holds each envelope's text.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

PROJECT = "42"


class FakeSentry(FakeServer):
    """Sentry's envelope endpoint on 127.0.0.1."""

    def dsn(self) -> str:
        return f"http://publickey@{self.url.removeprefix('http://')}/{PROJECT}"

    def handle(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == f"/api/{PROJECT}/envelope/":
            return Reply(200, {})
        return Reply(404, {"detail": "not found"})

    @property
    def envelopes(self) -> list[str]:
        texts = []
        for request in self.requests:
            if request.path.endswith("/envelope/"):
                body = request.body
                if request.headers.get("Content-Encoding", request.headers.get("content-encoding", "")) == "gzip":
                    body = gzip.decompress(body)
                texts.append(body.decode())
        return texts

    def events(self) -> list[dict[str, Any]]:
        """The event items of every envelope (header line, then item header and payload lines)."""
        found = []
        for text in self.envelopes:
            lines = text.splitlines()
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found
