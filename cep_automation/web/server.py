"""Running the app under uvicorn: ``cep-automation serve``, and a background-thread server for tests.

Access log lines are redacted: Meta's handshake carries ``hub.verify_token`` in the query string,
and uvicorn would otherwise write it to the log as it is.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from cep_automation.redact import redact

GRACEFUL_SHUTDOWN_S = 10


class RedactAccessLog(logging.Filter):
    """Masks secrets, emails and phone numbers in the request line uvicorn logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def build_server(app: Any, host: str, port: int, **options: Any) -> uvicorn.Server:
    """A uvicorn server for ``app``; the log filter is added after uvicorn configured logging."""
    config = uvicorn.Config(app, host=host, port=port, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, **options)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())
    return uvicorn.Server(config)


class ServerThread:
    """The app served on 127.0.0.1 from a daemon thread, on a port the OS picks; a context manager.

    Parameters:
      app: the ASGI application.
      host: the address to bind.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, 0))
        self.host, self.port = self.socket.getsockname()[:2]
        self.server = build_server(app, self.host, self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the HTTP service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
        self.socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
