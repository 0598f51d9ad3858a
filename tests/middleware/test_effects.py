"""The effects ledger runs each step once per job key."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from cep_automation.errors import Postponed, TransientError, Unconfirmed
from cep_automation.records import effects
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


class Provider:
    """A send that counts, and the confirmations the provider has given by reference."""

    def __init__(self, fail: Exception | None = None):
        self.sent: list[str] = []
        self.confirmed: dict[str, str] = {}
        self.fail = fail

    def send(self, reference: str) -> str:
        self.sent.append(reference)
        if self.fail is not None:
            raise self.fail
        return f"wamid.{len(self.sent)}"


def test_confirmable_send_records_its_effect_and_leaves_no_intent(db, redis_client):
    ledger, provider = Ledger("lead.created:c1"), Provider()
    effect = ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    assert (effect.provider_id, effect.replayed) == ("wamid.1", False)
    assert provider.sent == ["lead.created:c1:whatsapp_lead"]  # our reference travels with the message
    assert ledger._intent("whatsapp_lead") is None
    assert ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60).replayed


def test_a_send_that_may_have_gone_is_confirmed_not_repeated(db, redis_client):
    # Given a send whose answer never came (it may have reached the provider)
    ledger, provider = Ledger("lead.created:c2"), Provider(fail=Unconfirmed("read timed out"))
    with pytest.raises(Unconfirmed):
        ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    # When the provider's status webhook has confirmed it by our reference, and the job runs again
    provider.confirmed["lead.created:c2:whatsapp_lead"] = "wamid.sent-before"
    provider.fail = None
    effect = ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    # Then it is recorded from the confirmation, not sent again
    assert (effect.provider_id, effect.replayed) == ("wamid.sent-before", True)
    assert len(provider.sent) == 1
    assert ledger.done("whatsapp_lead").provider_id == "wamid.sent-before"


def test_without_a_confirmation_the_job_waits_then_sends_after_the_grace(db, redis_client):
    ledger, provider = Ledger("lead.created:c3"), Provider(fail=Unconfirmed("connection reset"))
    with pytest.raises(Unconfirmed):
        ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    provider.fail = None
    # Within the grace period the job is postponed (no attempt used up), and nothing is sent
    with pytest.raises(Postponed, match="waiting up to"):
        ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    assert len(provider.sent) == 1
    # After it, no confirmation having come, it is sent again
    effect = ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=0)
    assert (effect.provider_id, len(provider.sent)) == ("wamid.2", 2)


def test_a_send_that_surely_failed_is_sent_again_at_once(db, redis_client):
    ledger, provider = Ledger("lead.created:c4"), Provider(fail=TransientError("HTTP 503"))
    with pytest.raises(TransientError):
        ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60)
    provider.fail = None
    assert ledger.run_confirmable("whatsapp_lead", provider.send, provider.confirmed.get, grace_s=60).provider_id
    assert len(provider.sent) == 2


def test_an_unconfirmable_send_that_may_have_gone_is_not_repeated(db):
    # Mandrill has no idempotency key and no confirmation by our reference: at most once after a timeout
    ledger, sent = Ledger("lead.created:c5"), []

    def send():
        sent.append(1)
        raise Unconfirmed("mandrill: POST /messages/send-template got no answer")

    first = ledger.run("confirmation_email", send)
    again = ledger.run("confirmation_email", send)
    assert first.unconfirmed and again.unconfirmed and again.replayed
    assert sent == [1]


@pytest.fixture
def notes(db):
    """A table for steps whose effect is a database write (as entering a lead in its sequences is)."""
    db.execute("CREATE TABLE IF NOT EXISTS ledger_notes (job text, note text)")
    db.execute("TRUNCATE ledger_notes")
    db.commit()
    return lambda: [tuple(row.values()) for row in db.execute("SELECT job, note FROM ledger_notes ORDER BY note")]


def note(job: str, text: str, calls: list[str]):
    def write(conn):
        calls.append(text)
        conn.execute("INSERT INTO ledger_notes VALUES (%s, %s)", (job, text))
        return f"noted {text}"
    return write


def test_a_write_step_commits_with_the_steps_records_and_is_not_repeated(db, notes):
    calls = []
    # Given a job with a provider step done and a step whose effect is a database write
    attempt = Ledger("lead.created:w1")
    attempt.run("whatsapp_lead", lambda: "wamid.W1")
    # When the job stores its steps
    outcome = attempt.flush({"sequences": note("w1", "entered", calls)})
    # Then the write and both records are in PostgreSQL, and none is left held in Redis
    assert outcome["sequences"].result == "noted entered" and not outcome["sequences"].replayed
    assert notes() == [("w1", "entered")]
    assert Ledger("lead.created:w1").steps() == {"whatsapp_lead": "wamid.W1", "sequences": None}
    assert Ledger("lead.created:w1").held() == {}
    # And the next attempt finds it done and does not write again
    retry = Ledger("lead.created:w1").flush({"sequences": note("w1", "entered", calls)})
    assert retry["sequences"].replayed and calls == ["entered"] and notes() == [("w1", "entered")]


def test_a_failed_write_is_rolled_back_alone_and_runs_again_with_the_retry(db, notes):
    calls = []

    def half_then_fail(conn):
        conn.execute("INSERT INTO ledger_notes VALUES ('w2', 'half')")
        raise ValueError("sequence file has no step")

    # Given a provider step done, a write that fails half-way, and a write that succeeds
    attempt = Ledger("lead.created:w2")
    attempt.run("email", lambda: "mandrill-2")
    outcome = attempt.flush({"broken": half_then_fail, "sequences": note("w2", "entered", calls)})
    # Then the failed write is reported and left nothing; the other write and the provider step are stored
    assert isinstance(outcome["broken"], ValueError)
    assert notes() == [("w2", "entered")]
    assert Ledger("lead.created:w2").steps() == {"email": "mandrill-2", "sequences": None}
    # And a retry runs only the failed write
    retry = Ledger("lead.created:w2").flush({"broken": note("w2", "fixed", calls),
                                              "sequences": note("w2", "entered", calls)})
    assert not retry["broken"].replayed and retry["sequences"].replayed
    assert calls == ["entered", "fixed"] and notes() == [("w2", "entered"), ("w2", "fixed")]


def commands_on(redis_client, name: str, action) -> list[str]:
    """The commands Redis received on key ``name`` while ``action()`` ran (Redis's MONITOR: what really went out)."""
    seen: list[str] = []
    done = f"commands-on-done-{uuid.uuid4()}"
    with redis_client.monitor() as monitor:
        def listen() -> None:
            for event in monitor.listen():
                if done in event["command"]:
                    return
                if name in event["command"]:
                    seen.append(event["command"].split()[0].upper())

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.2)  # MONITOR is on before the action
        action()
        redis_client.echo(done)
        listener.join(timeout=10)
    return seen


def test_a_runs_held_effects_get_their_retention_once_and_keep_it(db, redis_client):
    ledger = Ledger("lead.created:ttl-once")
    held = ledger._held_key()

    def three_steps() -> None:
        for step in ("mailchimp", "confirmation_email", "crm:webhook"):
            ledger.run(step, lambda: "id-1")

    seen = commands_on(redis_client, held, three_steps)
    assert seen.count("HSET") == 3 and seen.count("EXPIRE") == 1
    assert 0 < redis_client.ttl(held) <= 7 * 24 * 3600


def test_intents_get_their_retention_once_and_a_failed_write_leaves_it_to_the_next(db, redis_client):
    ledger, provider = Ledger("lead.created:intent-ttl-once"), Provider()
    intents = ledger._intent_key()

    def two_sends() -> None:
        for step in ("whatsapp_lead", "whatsapp_advisor"):
            ledger.run_confirmable(step, provider.send, provider.confirmed.get, grace_s=60)

    seen = commands_on(redis_client, intents, two_sends)
    assert seen.count("HSET") == 2 and seen.count("EXPIRE") == 1
    # A failed first write marks nothing: the next write to that key sets its retention.
    ledger = Ledger("lead.created:intent-ttl-after-failure")
    assert ledger._first_write(ledger._intent_key())
    ledger._not_written(ledger._intent_key(), True)
    assert ledger._first_write(ledger._intent_key())


def test_a_flush_of_more_effects_than_one_insert_takes_stores_them_all_once(db):
    # More steps than one INSERT statement carries (INSERT_ROWS): the flush splits them, and a second flush (a retry
    # finding them held) adds nothing twice
    ledger = Ledger("sequence.batch:many")
    count = effects.INSERT_ROWS * 2 + 7
    with ledger.batched():
        for number in range(count):
            ledger.run(f"step-{number}", lambda number=number: f"id-{number}")
    assert ledger.flush() == {}
    stored = Ledger("sequence.batch:many").steps()
    assert len(stored) == count and stored["step-0"] == "id-0" and stored[f"step-{count - 1}"] == f"id-{count - 1}"
    assert ledger.flush() == {}
    rows = db.execute("SELECT count(*) AS n FROM effects WHERE job_key = 'sequence.batch:many'").fetchone()
    assert rows["n"] == count
