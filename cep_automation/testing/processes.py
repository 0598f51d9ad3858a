"""Helpers for tests that drive real processes: the CLI command line and bounded waiting."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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
