"""Faults at the fake APIs (held requests, a storm of 5xx and 429) and the scan of logs for secrets and PII."""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from loadkit import Lead

from cep_automation.testing import wait_for
from cep_automation.testing.fake_mailchimp import problem
from cep_automation.testing.fake_mandrill import error_reply
from cep_automation.testing.fakes import FakeServer, Recorded, Reply


class Gate:
    """Holds the requests a fake receives, to act (kill a worker) while every worker thread waits on it.

    ``after_answer=False`` holds a request before the fake handles it: the API has not done anything yet.
    ``after_answer=True`` lets the fake do the work (send the message) and holds only the answer.
    """

    def __init__(self, fake: FakeServer, *, after_answer: bool = False) -> None:
        self.fake, self.after_answer = fake, after_answer
        self._handle = fake.handle
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self.holding = False
        self.held = 0
        self.held_leads: set[str] = set()  # whose messages were held (the first template parameter: a lead's name)
        self.dropped = False
        fake.handle = self._serve  # type: ignore[method-assign]

    def _serve(self, request: Recorded) -> Reply:
        if not self.holding:
            return self._handle(request)
        reply = self._handle(request) if self.after_answer else None
        with self._lock:
            self.held += 1
            self.held_leads.add(first_param(request.json or {}))
        self._opened.wait(timeout=120)
        if reply is not None:
            return reply
        # The client died while we held its request: the API never acted on it.
        return Reply(503, {"error": "client gone"}) if self.dropped else self._handle(request)

    def hold(self) -> None:
        self.holding = True

    def release(self, *, drop: bool) -> None:
        """Answer every held request (``drop``: without acting on it) and stop holding new ones."""
        self.dropped = drop
        self.holding = False
        self._opened.set()
        self.fake.handle = self._handle  # type: ignore[method-assign]


def while_threads_wait(fake: FakeServer, threads: int, action: Callable[[], Any], *, drop: bool = False) -> int:
    """Hold ``fake``'s requests until ``threads`` wait on it, run ``action`` (kill something), then answer them
    (``drop``: without acting, as for a client that died). Returns how many requests were held."""
    gate = Gate(fake)
    gate.hold()
    try:
        wait_for(lambda: gate.held >= threads, what=f"{threads} worker threads to wait on {type(fake).__name__}")
        action()
    finally:
        gate.release(drop=drop)
    return gate.held


def storm_replies(sandbox: Any) -> dict[FakeServer, tuple[Callable[[], Reply], Callable[[], Reply]]]:
    """Per fake: its own 5xx answer and its own 429 with ``Retry-After: 1`` (each API's documented error body)."""
    wait = {"Retry-After": "1"}
    return {
        sandbox.whatsapp: (lambda: sandbox.whatsapp.error(131000),
                           lambda: sandbox.whatsapp.error(4, 429, headers=wait)),
        sandbox.mailchimp: (lambda: problem("Internal Server Error"),
                            lambda: problem("Too Many Requests", headers=wait)),
        sandbox.mandrill: (lambda: error_reply("GeneralError"),
                           lambda: error_reply("RequestLimitExceeded", status=429, headers=wait)),
        sandbox.crm: (lambda: Reply(503, {"error": "temporarily unavailable"}),
                      lambda: Reply(429, {"error": "slow down"}, wait)),
    }


class Storm:
    """Answers a share of every fake's requests with that API's 5xx or 429 (half each), never acting on them."""

    def __init__(self, sandbox: Any, rate: float = 0.3, seed: int | None = None) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        for fake, replies in storm_replies(sandbox).items():
            fake.handle = self._wrap(fake, fake.handle, replies)  # type: ignore[method-assign]

    def _wrap(self, fake: FakeServer, handle: Callable[[Recorded], Reply],
              replies: tuple[Callable[[], Reply], Callable[[], Reply]]) -> Callable[[Recorded], Reply]:
        def serve(request: Recorded) -> Reply:
            with self._lock:
                roll = self.random.random()
            if roll >= self.rate:
                return handle(request)
            reply = replies[0]() if roll < self.rate / 2 else replies[1]()
            with self._lock:
                self.faults[f"{type(fake).__name__} {reply.status}"] += 1
            return reply

        return serve


class InFlight:
    """WhatsApp answering slowly (``delay_s``), telling whose messages it is answering right now (the first
    template parameter: the lead's name, in both the lead's and the advisor's template)."""

    def __init__(self, fake: FakeServer, delay_s: float) -> None:
        self.now: set[str] = set()
        self._lock = threading.Lock()
        handle = fake.handle

        def serve(request: Recorded) -> Reply:
            to = first_param(request.json or {})
            with self._lock:
                self.now.add(to)
            try:
                time.sleep(delay_s)
                return handle(request)
            finally:
                with self._lock:
                    self.now.discard(to)

        fake.handle = serve  # type: ignore[method-assign]

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self.now)


def first_param(body: dict[str, Any]) -> str:
    for component in (body.get("template") or {}).get("components") or []:
        for parameter in component.get("parameters") or []:
            return str(parameter.get("text", ""))
    return ""


# Secrets and personal data in logs.

SECRET_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_CREDENTIALS")


class LogGuard:
    """What a test's logs must not contain (secrets, its leads' emails and phones), and where its workers log."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.secrets: set[str] = set()
        self.leads: list[Lead] = []

    def watch_env(self, env: dict[str, str]) -> None:
        """Treat every ``*_TOKEN``, ``*_KEY``, ``*_SECRET`` and ``*_CREDENTIALS`` value as a secret."""
        self.secrets |= {v for k, v in env.items() if k.endswith(SECRET_SUFFIXES) and v}

    def scan(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        """The leaks in the worker logs and in this process's records of the test's setup and call."""
        formatter = logging.Formatter("%(name)s %(message)s")
        texts = [path.read_text(errors="replace") for path in self.files if path.exists()]
        texts += [formatter.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase)]
        return leaks("\n".join(texts), secrets_=self.secrets, leads=self.leads)


def skip_unless_ci(why: str) -> None:
    """Skip a test whose server cannot be started here, except in CI, where it must run."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


_ANY_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def leaks(text: str, *, secrets_: Iterable[str] = (), leads: Iterable[Lead] = ()) -> list[str]:
    """Every secret, unmasked email and unmasked phone number found in ``text`` (empty when clean)."""
    found = [f"secret {s[:4]}…" for s in secrets_ if len(s) >= 6 and s in text]
    for match in _ANY_EMAIL.finditer(text):
        if not match.group(0).split("@")[0].endswith("***"):
            found.append(f"email {match.group(0)[:3]}…")
    nationals = {re.sub(r"\D", "", phone)[2:] for lead in leads for phone in (lead.phone, lead.advisor_phone)}
    if nationals:  # the nine digits after +34, as a whole number (spaces and dashes ignored)
        pattern = re.compile(r"(?<!\d)(?:34)?(" + "|".join(sorted(nationals)) + r")(?!\d)")
        found += [f"phone …{m.group(1)[-3:]}" for m in pattern.finditer(re.sub(r"[ \-]", "", text))]
    return found
