"""The HTTP client and base class every HTTP integration uses: timeouts, Retry-After, error classes, redacted logs.

Each response that is not a success becomes an exception a job can act on:

* timeouts, connection errors, 429 and 5xx → :class:`TransientError` (``retry_after`` from the
  ``Retry-After`` header, in seconds or as an HTTP date);
* other 4xx → :class:`PermanentError`;
* an integration refines this with ``classify`` (Meta sends rate limits as HTTP 400 with code 17,
  Mandrill sends bad requests as HTTP 500 with ``name: ValidationError``).

Log lines carry method, path, status and time; never headers, bodies or secret query parameters,
and emails and phones are masked.

An integration subclasses :class:`HttpIntegration` (and a kind from :mod:`cep_automation.plugins.kinds`),
names the setting holding its API root in ``base_url_setting``, and overrides ``headers``, ``auth``
or ``classify``; it then calls its API through ``self.client()``.
"""

from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import requests

from cep_automation import telemetry
from cep_automation.errors import PermanentError, TransientError, Unconfirmed
from cep_automation.plugins.integration import Integration
from cep_automation.records.metrics import observe_integration
from cep_automation.redact import redact

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# A classifier looks at an error response and returns the exception to raise, or None for the default.
Classifier = Callable[[requests.Response], Exception | None]
T = TypeVar("T")


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


def kept_session(base_url: str, *, headers: dict[str, str] | None = None, auth: Any = None) -> requests.Session:
    """A ``requests.Session`` for one API, kept for many requests: its connections are reused (no TCP and TLS
    handshake per call), cookies an API sets are never sent back (every request stands alone), and the proxy and
    CA bundle of the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``…) are read once, here:
    requests would scan ``os.environ`` twice per request (0.1 ms each call, 4% of a lead's CPU)."""
    session = requests.Session()
    session.headers.update(headers or {})
    session.auth = auth
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
    return session


def per_thread(local: threading.local, build: Callable[[], T]) -> T:
    """This thread's object kept in ``local``, built on first use, and again in a forked process (a child must not
    share its parent's sockets)."""
    value: T | None = getattr(local, "value", None)
    if value is None or local.pid != os.getpid():
        value = local.value = build()
        local.pid = os.getpid()
    return value


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
        self.session = kept_session(self.base_url, headers=headers, auth=auth)
        self.logger = logging.getLogger(f"cep_automation.plugins.http.{name}")
        # A client cached by a thread that has ended still closes its connections when collected.
        self._close = weakref.finalize(self, self.session.close)

    def request(self, method: str, path: str, *, repeatable: bool = True, **kwargs: Any) -> requests.Response:
        """Send a request; return the response if 2xx/3xx, else raise the classified error.

        ``repeatable=False`` marks a request the provider would act on twice if sent twice (a WhatsApp or
        email send): when it may have arrived — a read timeout, a connection dropped after sending — the
        error is :class:`Unconfirmed`, so the caller checks before it sends again.
        """
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        started = time.monotonic()
        try:
            with (self._span(method, url) if telemetry.ACTIVE else telemetry.NO_SPAN) as span:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status_code)
        except (requests.Timeout, requests.ConnectionError) as exc:
            observe_integration(self.name, "no_answer", time.monotonic() - started)
            raise self._failed(method, path, exc, repeatable) from None
        elapsed = time.monotonic() - started
        observe_integration(self.name, "ok" if response.status_code < 400 else "error", elapsed)
        self.logger.info("%s %s → %d in %d ms", method, redact(path.split("?")[0]), response.status_code,
                         elapsed * 1000)
        if response.status_code < 400:
            return response
        error = self.classify(response) if self.classify else None
        raise error or default_error(self.name, response)

    def _span(self, method: str, url: str) -> Any:
        """An HTTP client span: method, host and path (no query string: it may hold a token or an email)."""
        from cep_automation.telemetry import otel

        parts = urlsplit(url)
        attributes = {"http.request.method": method, "server.address": parts.hostname or "",
                      "url.path": redact(parts.path), "cep.integration": self.name}
        return otel.span(f"{method} {self.name}", attributes, kind=otel.SpanKind.CLIENT)

    def _failed(self, method: str, path: str, exc: Exception, repeatable: bool) -> TransientError:
        """The error for a request that got no answer: was it surely never sent, or may it have arrived?"""
        never_sent = isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout)
            and ("NewConnectionError" in repr(exc) or "Failed to establish" in str(exc)))
        if never_sent:
            return TransientError(f"{self.name}: cannot connect to {self.base_url}: {type(exc).__name__}")
        happened = "timed out" if isinstance(exc, requests.Timeout) else "got no answer"
        what = f"{self.name}: {method} {redact(path)} {happened} ({type(exc).__name__})"
        return TransientError(what) if repeatable else Unconfirmed(what + "; the provider may have acted on it")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self._close()


class HttpIntegration(Integration):
    """An integration that calls one HTTP API through an :class:`HttpClient`.

    Subclasses set ``base_url_setting`` (the setting holding the API root) and may override
    :meth:`headers` (authorization), :meth:`auth` (a ``requests`` auth object) and :meth:`classify`
    (API-specific error bodies). Each thread gets its own client, built on first use and kept for
    the integration's life (a ``requests.Session`` is not thread-safe; keeping it reuses connections).

    Parameters:
      settings: the core settings, or the plugin's own settings object (see ``settings_prefix``).
      timeout: (connect, read) seconds for each request; ``default_timeout`` when not given.
    """

    base_url_setting: ClassVar[str] = ""
    default_timeout: ClassVar[tuple[float, float]] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    client_name: ClassVar[str] = ""  # the name in errors and log lines, when not the integration's name

    def __init__(self, settings: Any, *, timeout: tuple[float, float] | None = None) -> None:
        super().__init__(settings)
        self.timeout = timeout or self.default_timeout
        self._local = threading.local()

    @property
    def base_url(self) -> str:
        """The API root, from the ``base_url_setting`` setting; PermanentError if it is empty."""
        value = getattr(self.settings, self.base_url_setting, None) if self.base_url_setting else None
        if not value:
            setting = self.variable(self.base_url_setting or "base_url")
            raise PermanentError(f"{self.name}: not configured: set {setting}")
        return str(value)

    def headers(self) -> dict[str, str]:
        """Headers sent with every request (e.g. ``Authorization``; never logged)."""
        return {}

    def auth(self) -> Any:
        """A ``requests`` auth object (a ``(user, password)`` tuple or an ``AuthBase``), or None."""
        return None

    def classify(self, response: requests.Response) -> Exception | None:
        """The error for an error response, or None to decide by status (see the module docstring)."""
        return None

    def client(self) -> HttpClient:
        """This thread's client, built on first use (and again in a forked process)."""
        return per_thread(self._local, self.new_client)

    def new_client(self) -> HttpClient:
        return HttpClient(self.client_name or self.name, self.base_url, headers=self.headers(), auth=self.auth(),
                          classify=self.classify, timeout=self.timeout)

    def close(self) -> None:
        """Close this thread's client; the next call builds a new one."""
        client: HttpClient | None = getattr(self._local, "value", None)
        if client is not None:
            self._local.value = None
            client.close()
