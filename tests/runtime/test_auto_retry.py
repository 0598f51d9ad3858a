"""Dead letters of transient errors retried by themselves; permanent ones never."""

from __future__ import annotations

import dramatiq
import pytest
from psycopg.types.json import Jsonb

from cep_automation import options as opt
from cep_automation.records import dead_letters
from cep_automation.runtime.auto_retry import retry_transient
from cep_automation.runtime.enqueue import retry_dead_letter


def letter(db, error_type: str, *, failed_ago: str = "20 minutes", options: dict | None = None,
           queue: str = "stats", actor: str = "stats.rollup") -> int:
    """A dead letter of ``actor`` (valid payload) that failed ``failed_ago`` with ``error_type``."""
    row = db.execute(
        "INSERT INTO dead_letters (queue, actor, message_id, payload, options, error_type, error_message, traceback,"
        " attempts, failed_at) VALUES (%s, %s, gen_random_uuid()::text, %s, %s, %s, 'it failed', '', 3,"
        " now() - %s::interval) RETURNING id",
        (queue, actor, Jsonb({"args": [], "kwargs": {"granularity": "daily"}}), Jsonb(options or {}), error_type,
         failed_ago)).fetchone()
    return row["id"]


def status(db, letter_id: int) -> tuple[str, str | None]:
    row = db.execute("SELECT status, retried_by FROM dead_letters WHERE id = %s", (letter_id,)).fetchone()
    return row["status"], row["retried_by"]


def queued(broker, queue: str) -> list[dramatiq.Message]:
    return [dramatiq.Message.decode(data) for data in broker.queues[queue].queue]


@pytest.mark.parametrize("error_type", ["TransientError", "Unconfirmed", "TimeLimitExceeded", "RetryAfterTooLong"])
def test_a_transient_dead_letter_is_retried_after_its_period(db, stub_broker, error_type):
    letter_id = letter(db, error_type)
    assert retry_transient(["stats"]) == {"stats": 1}
    assert status(db, letter_id) == ("retried", "auto")
    [message] = queued(stub_broker, "stats")
    assert message.kwargs == {"granularity": "daily"} and message.options[opt.AUTO_RETRY]["count"] == 1
    [retry] = dead_letters.retries(db, letter_id)
    assert retry["retried_by"] == "auto" and retry["message_id"] == message.message_id
    assert retry["error_type"] == error_type


@pytest.mark.parametrize("error_type", ["PermanentError", "PayloadError", "PoisonMessage", "KeyError", "Unknown"])
def test_a_permanent_dead_letter_is_never_retried(db, stub_broker, error_type):
    letter_id = letter(db, error_type, failed_ago="2 hours")
    assert retry_transient(["stats"]) == {"stats": 0}
    assert status(db, letter_id) == ("dead", None) and stub_broker.queues["stats"].qsize() == 0


def test_too_soon_and_too_late_are_left_alone(db, stub_broker):
    # Failed a minute ago: its 15-minute period has not passed
    recent = letter(db, "TransientError", failed_ago="1 minute")
    # First failed 25 hours ago (the chain's start is in its option): past the 24-hour window
    old = letter(db, "TransientError", failed_ago="20 minutes",
                 options={opt.AUTO_RETRY: {"since": "2020-01-01T00:00:00+00:00", "count": 96}})
    assert retry_transient(["stats"]) == {"stats": 0}
    assert status(db, recent) == status(db, old) == ("dead", None)


def test_the_chain_carries_its_start_and_count(db, stub_broker):
    since = "2026-11-30T08:00:00+00:00"
    letter(db, "TransientError", options={opt.AUTO_RETRY: {"since": since, "count": 2}}, failed_ago="16 minutes")
    db.execute("UPDATE dead_letters SET options = jsonb_set(options, '{cep_auto_retry,since}',"
               " to_jsonb((now() - interval '1 hour')::text))")
    assert retry_transient(["stats"]) == {"stats": 1}
    [message] = queued(stub_broker, "stats")
    assert message.options[opt.AUTO_RETRY]["count"] == 3


def test_an_operator_retry_is_noted_as_the_operators(db, stub_broker):
    letter_id = letter(db, "PermanentError")
    retry_dead_letter(db, letter_id)
    assert status(db, letter_id) == ("retried", "operator")
    assert [r["retried_by"] for r in dead_letters.retries(db, letter_id)] == ["operator"]
    listed = dead_letters.list_letters(db, status="retried")
    assert listed[0]["retried_by"] == "operator" and listed[0]["auto_retries"] == 0


def test_auto_retry_can_be_switched_off(db, stub_broker, monkeypatch):
    from cep_automation.settings import get_settings

    letter(db, "TransientError")
    monkeypatch.setenv("CEP_DEAD_LETTER_AUTO_RETRY", "false")
    get_settings.cache_clear()
    try:
        assert retry_transient() == {}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
