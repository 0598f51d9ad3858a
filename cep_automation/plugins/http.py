"""The HTTP client every built-in integration uses: timeouts, Retry-After, error classes, redacted logs.

Each response that is not a success becomes an exception a job can act on:

* timeouts, connection errors, 429 and 5xx → :class:`TransientError` (``retry_after`` from the
  ``Retry-After`` header, in seconds or as an HTTP date);
* other 4xx → :class:`PermanentError`;
* an integration refines this with ``classify`` (Meta sends rate limits as HTTP 400 with code 17,
  Mandrill sends bad requests as HTTP 500 with ``name: ValidationError``).

Log lines carry method, path, status and time; never headers, bodies or secret query parameters,
and emails and phones are masked.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from cep_automation.errors import PermanentError, TransientError
from cep_automation.redact import redact

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# A classifier looks at an error response and returns the exception to raise, or None for the default.
Classifier = Callable[[requests.Response], Exception | None]


def retry_after_seconds(response: requests.Response) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date); None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def short_body(response: requests.Response, limit: int = 300) -> str:
    """The start of an error body, redacted, for error messages."""
    return redact(response.text[:limit]).replace("\n", " ")


def default_error(name: str, response: requests.Response) -> Exception:
    """The exception for an error response by status alone."""
    what = f"{name}: HTTP {response.status_code} {short_body(response)}"
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response))
    return PermanentError(what)


class HttpClient:
    """A ``requests.Session`` bound to one API's base URL.

    Parameters:
      name: the integration's name, used in errors and log lines.
      base_url: the API root (from a ``<SERVICE>_BASE_URL`` setting).
      headers: sent with every request (authorization goes here; it is never logged).
      classify: turns API-specific error bodies into exceptions (see module docstring).
      timeout: (connect, read) seconds.
    """

    def __init__(self, name: str, base_url: str, *, headers: dict[str, str] | None = None,
                 auth: Any = None, classify: Classifier | None = None,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.classify = classify
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.session.auth = auth
        self.logger = logging.getLogger(f"cep_automation.plugins.http.{name}")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request; return the response if 2xx/3xx, else raise the classified error."""
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        started = time.monotonic()
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise TransientError(f"{self.name}: {method} {redact(path)} timed out ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            raise TransientError(f"{self.name}: cannot connect to {self.base_url}: {type(exc).__name__}") from None
        self.logger.info("%s %s → %d in %d ms", method, redact(path.split("?")[0]), response.status_code,
                         (time.monotonic() - started) * 1000)
        if response.status_code < 400:
            return response
        error = self.classify(response) if self.classify else None
        raise error or default_error(self.name, response)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self.session.close()
