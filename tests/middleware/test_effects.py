"""The effects ledger runs each step once per job key."""

from __future__ import annotations

import pytest

from cep_automation.records.effects import Ledger


def test_step_runs_once_and_replays_its_provider_id(db):
    ledger, sent = Ledger("lead.created:abc"), []

    def send():
        sent.append(1)
        return "wamid.HBgL1"

    first = ledger.run("whatsapp_lead", send)
    again = ledger.run("whatsapp_lead", send)
    assert (first.provider_id, first.replayed) == ("wamid.HBgL1", False)
    assert (again.provider_id, again.replayed) == ("wamid.HBgL1", True)
    assert sent == [1]
    assert ledger.steps() == {"whatsapp_lead": "wamid.HBgL1"}


def test_failed_step_records_nothing_so_the_retry_runs_it(db):
    ledger = Ledger("lead.created:def")

    def boom():
        raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError):
        ledger.run("email", boom)
    assert ledger.done("email") is None
    assert ledger.run("email", lambda: {"provider_id": "mandrill-1", "status": "sent"}).provider_id == "mandrill-1"
    assert ledger.done("email").result == {"provider_id": "mandrill-1", "status": "sent"}


def test_keys_are_independent(db):
    Ledger("a").run("x", lambda: "1")
    assert Ledger("b").done("x") is None
