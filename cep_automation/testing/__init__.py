"""Test kit for cep_automation and its plugin authors: real services, stub broker, fake HTTP servers."""

from __future__ import annotations

from cep_automation.testing.fakes import FakeServer, Recorded
from cep_automation.testing.processes import CLI, wait_for
from cep_automation.testing.services import TestServices

__all__ = ["CLI", "FakeServer", "Recorded", "TestServices", "wait_for"]
