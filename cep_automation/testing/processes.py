"""Helpers for tests that drive real processes: the CLI command line, bounded waiting, a thread's wake-ups."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# ``cep-automation`` run with this interpreter, whether or not the console script is on PATH.
CLI = [sys.executable, "-c", "from cep_automation.cli import main; main()"]


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, what: str = "condition") -> T:
    """Poll until ``predicate`` returns something truthy; bounded, so a hang fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wake_ups(thread: threading.Thread) -> int:
    """How many times ``thread`` of this process gave up the CPU of its own accord so far (a sleep, a wait, a
    socket read): Linux's ``voluntary_ctxt_switches``. A background thread that polls shows it, idle or busy."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt_switches")))
