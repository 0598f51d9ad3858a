"""A base for fake third-party HTTP APIs: a real local server that records every request.

Subclasses implement :meth:`FakeServer.handle` with the API's documented answers; tests
script failures with :meth:`FakeServer.fail_next` (a 429 with ``Retry-After``, a 5xx, an
API-specific error body) and read what arrived from :attr:`FakeServer.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the caller's port: requests on one kept-alive connection share it

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """An answer: status, JSON body (or raw bytes), headers and an optional delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeServer:
    """A threaded HTTP server on 127.0.0.1; use as a context manager or call start/stop."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.latency_s = 0.0  # added to every normal answer, to stand in for a remote API
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at once: shows a client's concurrency
        self._scripted: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._handler = self._handler_class()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def keep_alive(self) -> bool:
        """Whether a connection serves many requests (HTTP/1.1), as real APIs do; off (HTTP/1.0) unless set."""
        return self._handler.protocol_version == "HTTP/1.1"

    @keep_alive.setter
    def keep_alive(self, on: bool) -> None:
        self._handler.protocol_version = "HTTP/1.1" if on else "HTTP/1.0"

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{cast(str, host)}:{port}"  # getsockname() of an AF_INET socket: a str host

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                  times: int = 1, delay_s: float = 0.0) -> None:
        """Answer the next ``times`` requests with this reply instead of the normal one."""
        with self._lock:
            self._scripted.extend(Reply(status, body, headers or {}, delay_s) for _ in range(times))

    def handle(self, request: Recorded) -> Reply:
        """The normal answer of the API; subclasses override. The base answers 404."""
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})

    def _dispatch(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._scripted.popleft() if self._scripted else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if scripted:
                return scripted
            if self.latency_s:
                time.sleep(self.latency_s)
            return self.handle(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Recorded(self.command, parts.path, parse_qs(parts.query),
                                   {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length),
                                   self.client_address[1])
                reply = fake._dispatch(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        return Handler
