"""The effects ledger when PostgreSQL refuses the job's effects after the provider acted: they stay in Redis and
the next attempt takes them over instead of acting again (``test_postgres_outage.py`` does it for real)."""

from __future__ import annotations

import pytest

from cep_automation.errors import ServiceUnavailable, TransientError
from cep_automation.records.effects import Ledger
from cep_automation.testing.ports import free_port


@pytest.fixture
def postgres_refuses_inserts(monkeypatch):
    """PostgreSQL answers reads but goes away for the insert, once."""
    insert = Ledger._insert
    calls = []

    def refuse_once(self, *args):
        calls.append(args)
        if len(calls) == 1:
            raise ServiceUnavailable("PostgreSQL is unreachable at 127.0.0.1:5432/test: connection refused")
        return insert(self, *args)

    monkeypatch.setattr(Ledger, "_insert", refuse_once)
    return calls


def test_an_effect_the_ledger_could_not_record_is_not_repeated(db, redis_client, postgres_refuses_inserts):
    sent = []

    def send():
        sent.append(1)
        return "wamid.HBgL1"

    # Given a step that succeeded at the provider while PostgreSQL refused to store the job's effects
    attempt = Ledger("lead.created:held-1")
    first = attempt.run("whatsapp_lead", send)
    attempt.flush()
    assert (first.provider_id, first.replayed) == ("wamid.HBgL1", False)
    assert db.execute("SELECT count(*) AS n FROM effects").fetchone()["n"] == 0
    # When the job's next attempt runs the step again
    retry = Ledger("lead.created:held-1")
    again = retry.run("whatsapp_lead", send)
    retry.flush()
    # Then the provider is not called twice, and the ledger now has the effect, no longer held in Redis
    assert sent == [1] and (again.provider_id, again.replayed) == ("wamid.HBgL1", True)
    assert Ledger("lead.created:held-1").steps() == {"whatsapp_lead": "wamid.HBgL1"}
    assert Ledger("lead.created:held-1").held() == {}


def test_without_redis_the_ledger_cannot_tell_and_the_step_waits(db, monkeypatch, cep_services):
    from cep_automation.db.redis_client import reset_redis
    from cep_automation.settings import get_settings

    def point_redis_at(url: str) -> None:
        monkeypatch.setenv("REDIS_URL", url)
        get_settings.cache_clear()
        reset_redis()

    point_redis_at(f"redis://127.0.0.1:{free_port()}/0")  # a real connection refused: nothing listens there
    sent = []
    try:
        with pytest.raises(TransientError, match="Redis unavailable"):
            Ledger("lead.created:held-2").run("whatsapp_lead", lambda: sent.append(1))
    finally:
        point_redis_at(cep_services.redis_url)
    assert sent == []
