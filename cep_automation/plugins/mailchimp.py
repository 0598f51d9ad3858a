"""Built-in Mailchimp Marketing integration: upsert a lead into the audience, with merge fields and tags.

It uses the mailchimp3 client, which cannot use :class:`~cep_automation.plugins.http.HttpClient`; so
this module sets its timeout, classifies its errors (:func:`classify_error`) and logs each response
through ``cep_automation.plugins.http.mailchimp`` itself, redacted as the HttpClient would. mailchimp3 sends
each request on a new ``requests`` session (a TCP and TLS handshake per call, two per upsert, and the
environment's proxies read each time): :class:`KeptSessionMailChimp` sends them on one kept session per client.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from mailchimp3 import MailChimp  # type: ignore[import-untyped]  # mailchimp3 ships no type hints
from mailchimp3.mailchimpclient import MailChimpError  # type: ignore[import-untyped]  # no type hints either

from cep_automation.errors import PermanentError, TransientError
from cep_automation.flow import Limit, hold
from cep_automation.plugins.erasure import DataSubject
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    kept_session,
    per_thread,
    retry_after_seconds,
)
from cep_automation.plugins.kinds import Contact, EmailMarketing
from cep_automation.records.metrics import observe_integration
from cep_automation.redact import redact
from cep_automation.settings import Settings

logger = logging.getLogger("cep_automation.plugins.http.mailchimp")
CONNECTION_WAIT_S = 5.0  # a call waits this long for one of the account's connections, then the job is postponed


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased email; trimmed too, which mailchimp3 does not do."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 (an id, not security)


class ComplianceState(PermanentError):
    """400 ``Member In Compliance State``: the member unsubscribed, bounced or is under review, and cannot be
    set ``subscribed`` by us; Mailchimp's documented way back is ``pending`` (the person confirms by email)."""


class NotFound(PermanentError):
    """404 ``Resource Not Found``: no such member (or list)."""


def classify_error(exc: Exception) -> Exception:
    """The TransientError or PermanentError for a mailchimp3 or requests exception."""
    if isinstance(exc, requests.Timeout):
        return TransientError(f"mailchimp: request timed out ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return TransientError(f"mailchimp: cannot reach the API: {type(exc).__name__}")
    if not isinstance(exc, MailChimpError):
        return exc
    problem: dict[str, Any] = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    response = problem.get("response")
    status = response.status_code if response is not None else int(problem.get("status") or 0)
    what = redact(f"mailchimp: HTTP {status} {describe_problem(problem)}")
    # 400 Member In Compliance State / Forgotten Email Not Subscribed / Invalid Resource, 401, 403, 404:
    # retrying cannot fix them. 429 (too many connections) and 5xx can.
    if status == 429 or status >= 500:
        return TransientError(what, retry_after=retry_after_seconds(response) if response is not None else None)
    if problem.get("title") == "Member In Compliance State":
        return ComplianceState(what)
    if status == 404:
        return NotFound(what)
    return PermanentError(what)


def describe_problem(problem: dict[str, Any]) -> str:
    """``title: detail (field: message; …)`` of a problem+json body, or a placeholder if it had none."""
    text = ": ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k)) or "(no problem details)"
    errors = [f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors") or [] if isinstance(e, dict)]
    return f"{text} ({'; '.join(errors)})" if errors else text


def _log_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: the line HttpClient would write (method, path, status, time)."""
    path = urlsplit(response.url).path
    logger.info("%s %s → %d in %d ms", response.request.method, redact(path), response.status_code,
                response.elapsed.total_seconds() * 1000)


class _DropLibraryLines(logging.Filter):
    """mailchimp3 logs each request body (emails, names, phones) at INFO; we log our own redacted lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _silence_mailchimp3() -> None:
    library = logging.getLogger("mailchimp3.client")
    if not any(isinstance(f, _DropLibraryLines) for f in library.filters):
        library.addFilter(_DropLibraryLines())


class KeptSessionMailChimp(MailChimp):  # type: ignore[misc]  # MailChimp is untyped
    """mailchimp3's client, its requests sent on one kept session (see the module docstring)."""

    def __init__(self, *args: Any, base_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = base_url
        self.session = kept_session(base_url)
        self._close = weakref.finalize(self, self.session.close)  # a thread's client, collected with the thread

    def _make_request(self, **kwargs: Any) -> requests.Response:
        # mailchimp3's own lines (request bodies: emails, names) are not written: see _DropLibraryLines.
        return self.session.request(**kwargs)


class Mailchimp(EmailMarketing):
    """Adds or updates leads in one Mailchimp audience.

    Parameters:
      settings: uses ``mailchimp_api_key``, ``mailchimp_list_id``, ``mailchimp_server`` (else the key's
        data-center suffix) and ``mailchimp_base_url`` (else ``https://{dc}.api.mailchimp.com/3.0/``).
      timeout: (connect, read) seconds for each request.
    Raises:
      TransientError: timeouts, connection errors, 429 and 5xx (``retry_after`` from ``Retry-After``).
      PermanentError: other 4xx (compliance state, forgotten email, invalid resource, bad key, unknown list).
    """

    name = "mailchimp"
    required_settings = ("mailchimp_api_key", "mailchimp_list_id")

    def __init__(self, settings: Any, *, timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> None:
        super().__init__(settings)
        self.timeout = timeout
        self._local = threading.local()  # one client per worker thread

    @property
    def base_url(self) -> str:
        """The API root, ending in ``/`` because mailchimp3 joins paths onto it with ``urljoin``."""
        if self.settings.mailchimp_base_url:
            return str(self.settings.mailchimp_base_url).rstrip("/") + "/"
        server = self.settings.mailchimp_server or self._api_key().rpartition("-")[2]
        if not re.fullmatch(r"[a-z]+\d+", server or ""):
            raise PermanentError("mailchimp: unknown data center: set MAILCHIMP_SERVER (e.g. us6)")
        return f"https://{server}.api.mailchimp.com/3.0/"

    def upsert_contact(self, contact: Contact) -> str:
        """PUT the member (keyed by the hash of its email), then set its tags; return the hash."""
        member_id = subscriber_hash(contact.email)
        body = {"email_address": contact.email.strip(), "status_if_new": "subscribed",
                "merge_fields": merge_fields(contact)}
        list_id = self.settings.mailchimp_list_id
        tags = {"tags": [{"name": tag, "status": "active"} for tag in contact.tags]}

        def upsert(client: MailChimp) -> Any:  # two requests one after the other: one connection, taken once
            member = client.lists.members.create_or_update(list_id, member_id, body)
            if contact.tags:
                client.lists.members.tags.update(list_id, member_id, tags)
            return member

        member = self._call(upsert)
        return str((member or {}).get("id") or member_id)

    def tag_contact(self, email: str, tags: list[str]) -> str:
        """POST the member's tags (active); return the member's hash."""
        list_id, member_id = self.settings.mailchimp_list_id, subscriber_hash(email)
        body = {"tags": [{"name": tag, "status": "active"} for tag in tags]}
        self._call(lambda client: client.lists.members.tags.update(list_id, member_id, body))
        return member_id

    def set_subscription(self, email: str, subscribed: bool) -> str:
        """``unsubscribed`` (if a member); or ``subscribed``, which a member in compliance state cannot be set to by
        us, so then ``pending``: Mailchimp emails them to confirm (double opt-in), as it documents."""
        list_id, member_id = self.settings.mailchimp_list_id, subscriber_hash(email)
        if not subscribed:  # PATCH, not PUT: someone who is not in the audience is not added to it
            try:
                self._call(lambda c: c.lists.members.update(list_id, member_id, {"status": "unsubscribed"}))
            except NotFound:
                return "not a member"
            return "unsubscribed"
        status = "subscribed"
        body = {"email_address": email.strip(), "status_if_new": status, "status": status}
        try:
            self._call(lambda c: c.lists.members.create_or_update(list_id, member_id, body))
        except ComplianceState:
            body.update(status="pending", status_if_new="pending")
            self._call(lambda c: c.lists.members.create_or_update(list_id, member_id, body))
            return "pending"
        return status

    def erase_contact(self, subject: DataSubject) -> str:
        """Permanently delete each address from the audience (``actions/delete-permanent``); Mailchimp then
        refuses to re-import it, as the GDPR wants. An address it does not hold is already erased."""
        list_id, deleted = self.settings.mailchimp_list_id, 0
        for email in subject.emails:
            try:
                self._call(partial(_delete_permanent, list_id=list_id, member_id=subscriber_hash(email)))
            except NotFound:
                continue
            deleted += 1
        return f"{deleted} of {len(subject.emails)} address(es) permanently deleted from the audience"

    def connections(self) -> Limit:
        """Mailchimp allows 10 simultaneous connections per account: shared by every worker (flow control)."""
        return Limit("mailchimp", concurrency=self.settings.mailchimp_max_connections,
                     lease_s=sum(self.timeout) + 5, wait_s=CONNECTION_WAIT_S)

    def _account(self) -> str:
        """The account's bucket: a digest of the API key (the key itself never goes into Redis)."""
        return hashlib.sha256(self._api_key().encode()).hexdigest()[:12]

    def _call(self, action: Callable[[MailChimp], Any]) -> Any:
        """Run one mailchimp3 call within the account's connections, turning its exceptions into ours."""
        started = time.monotonic()
        try:
            with hold(self.connections(), self._account()):
                answer = action(self._client())
            observe_integration(self.name, "ok", time.monotonic() - started)
            return answer
        except (MailChimpError, requests.RequestException) as exc:  # before ValueError: JSONDecodeError is both
            outcome = "no_answer" if isinstance(exc, (requests.Timeout, requests.ConnectionError)) else "error"
            observe_integration(self.name, outcome, time.monotonic() - started)
            raise classify_error(exc) from None
        except ValueError as exc:  # mailchimp3 checks the email's shape before sending
            # Not echoed: an address too malformed to match the masking pattern would leak whole.
            raise PermanentError(f"mailchimp: the contact was rejected before sending: {exc}") from None

    def _client(self) -> MailChimp:
        return per_thread(self._local, self._new_client)

    def _new_client(self) -> MailChimp:
        _silence_mailchimp3()
        try:
            return KeptSessionMailChimp(mc_api=self._api_key(), timeout=self.timeout, base_url=self.base_url,
                                        request_hooks={"response": [_log_response]})
        except ValueError:
            raise PermanentError("mailchimp: MAILCHIMP_API_KEY is malformed (expected 32 hex digits, -dc)") from None

    def _api_key(self) -> str:
        return str(self.settings.mailchimp_api_key.get_secret_value())


def _delete_permanent(client: MailChimp, *, list_id: str, member_id: str) -> Any:
    return client.lists.members.delete_permanent(list_id, member_id)


def merge_fields(contact: Contact) -> dict[str, str]:
    """FNAME, LNAME and PHONE when known, then the contact's own merge fields (which win)."""
    known = {"FNAME": contact.first_name, "LNAME": contact.last_name, "PHONE": contact.phone}
    # An empty value would blank what the member already has in the audience.
    return {**{tag: value for tag, value in known.items() if value}, **contact.merge_fields}


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(Mailchimp(settings))
