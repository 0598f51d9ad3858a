"""Test kit for cep_automation and its plugin authors: real services, stub broker, fake HTTP servers."""

from __future__ import annotations

from cep_automation.testing.fake_openai import FakeOpenAI
from cep_automation.testing.fake_slack import FakeSlack
from cep_automation.testing.fakes import FakeServer, Recorded, Reply
from cep_automation.testing.processes import CLI, wait_for, wake_ups
from cep_automation.testing.s3_server import S3Server
from cep_automation.testing.services import TestServices

__all__ = ["CLI", "FakeOpenAI", "FakeServer", "FakeSlack", "Recorded", "Reply", "S3Server", "TestServices", "wait_for",
           "wake_ups"]
