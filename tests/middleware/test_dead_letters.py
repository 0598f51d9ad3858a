"""Dead letters: every kind of final failure recorded; PostgreSQL outages spooled; operator operations."""

from __future__ import annotations

import time

import pytest
from dramatiq import Message
from sample_actors import calls, noop, steps_actor

from cep_automation.db import close_pool
from cep_automation.db.redis_client import key
from cep_automation.errors import CepError
from cep_automation.records import dead_letters, job_state
from cep_automation.records.dead_letters import SPOOL, flush_spool
from cep_automation.runtime.enqueue import retry_dead_letter
from cep_automation.settings import get_settings


def letter(db, message_id):
    return db.execute("SELECT * FROM dead_letters WHERE message_id = %s", (message_id,)).fetchone()


def test_age_limit_is_dead_lettered(db, stub_broker, stub_worker):
    message = noop.message_with_options(max_age=1)
    message = message.copy(message_timestamp=int(time.time() * 1000) - 60_000)
    stub_broker.enqueue(message)
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    row = letter(db, message.message_id)
    assert row["error_type"] == "SkipMessage" and "age limit" in row["error_message"]


def test_unknown_actor_is_dead_lettered(db, stub_broker, stub_worker):
    stub_broker.declare_queue("testing")
    message = Message(queue_name="testing", actor_name="lead.vanished", args=(), kwargs={"x": 1}, options={})
    stub_broker.queues["testing"].put(message.encode())
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    row = letter(db, message.message_id)
    assert row["error_type"] == "ActorNotFound" and row["actor"] == "lead.vanished"
    assert row["payload"]["kwargs"] == {"x": 1}


@pytest.fixture
def postgres_down(monkeypatch, cep_services):
    """Point this process at a port where no PostgreSQL listens, then restore it."""
    def down():
        close_pool()
        monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
        get_settings.cache_clear()

    def up():
        close_pool()
        monkeypatch.setenv("DATABASE_URL", cep_services.database_url)
        get_settings.cache_clear()

    yield down, up
    up()


def test_postgres_down_spools_then_writes_later(db, stub_broker, stub_worker, redis_client, postgres_down):
    down, up = postgres_down
    # Given PostgreSQL is unreachable when a message dies (its steps need no database)
    message = noop.message_with_options(max_age=1).copy(message_timestamp=int(time.time() * 1000) - 60_000)
    down()
    stub_broker.enqueue(message)
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    # Then it waits in the Redis spool, not lost
    assert redis_client.llen(SPOOL.key) == 1
    assert job_state.get_job(message.message_id).state == "dead"
    # When PostgreSQL is back, the spool is written
    up()
    assert flush_spool() == 1
    assert redis_client.llen(SPOOL.key) == 0
    assert letter(db, message.message_id)["error_type"] == "SkipMessage"


@pytest.fixture
def three_dead(db, stub_broker, stub_worker):
    sent = [steps_actor.send(item=i, fail={"crm": 99}, permanent=True) for i in (31, 32, 33)]
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    return [letter(db, m.message_id)["id"] for m in sent]


def test_list_filters_and_pages(db, three_dead):
    assert len(dead_letters.list_letters(db, queue="testing")) == 3
    assert dead_letters.list_letters(db, queue="leads") == []
    page = dead_letters.list_letters(db, limit=2, offset=2)
    assert len(page) == 1
    assert dead_letters.list_letters(db, actor="testing.steps", status="discarded") == []


def test_retry_reenqueues_and_links(db, stub_broker, stub_worker, three_dead):
    # The operator fixed the cause (here: the payload no longer makes crm fail) and retries
    letter_id = three_dead[0]
    row = dead_letters.get_letter(db, letter_id)
    db.execute("UPDATE dead_letters SET payload = %s WHERE id = %s",
               ('{"args": [], "kwargs": {"item": 31}}', letter_id))
    new_id = retry_dead_letter(db, letter_id)
    stub_broker.join("testing", fail_fast=False)  # the stub keeps the fixture's dead messages
    stub_worker.join()
    updated = dead_letters.get_letter(db, letter_id)
    assert updated["status"] == "retried" and updated["retried_message_id"] == new_id != row["message_id"]
    assert job_state.get_job(new_id).state == "completed"
    assert calls(31, "mailchimp") == 1  # done before: the ledger kept it
    with pytest.raises(CepError, match="already retried"):
        retry_dead_letter(db, letter_id)


def test_discard_needs_a_reason_and_stats_and_purge(db, three_dead):
    with pytest.raises(CepError, match="reason is required"):
        dead_letters.discard(db, three_dead[1], "  ")
    dead_letters.discard(db, three_dead[1], "customer asked to be forgotten")
    assert dead_letters.get_letter(db, three_dead[1])["discard_reason"] == "customer asked to be forgotten"
    assert {(r["status"], r["count"]) for r in dead_letters.stats(db)} == {("dead", 2), ("discarded", 1)}
    db.execute("UPDATE dead_letters SET failed_at = now() - interval '40 days' WHERE id = %s", (three_dead[2],))
    assert dead_letters.purge(db, 30) == 1
    with pytest.raises(dead_letters.DeadLetterNotFound):
        dead_letters.get_letter(db, three_dead[2])


def test_spool_key_is_namespaced(redis_client):
    assert SPOOL.key == key("dlq", "spool")
