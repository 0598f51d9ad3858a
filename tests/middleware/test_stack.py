"""The whole stack together on the StubBroker (real Redis and PostgreSQL underneath)."""

from __future__ import annotations

from sample_actors import calls, steps_actor

from cep_automation.records import job_state


def audit_story(db, item):
    return [(r["status"], r["attempt"]) for r in db.execute(
        "SELECT status, attempt FROM audit_log WHERE entity_type = 'item' AND entity_id = %s ORDER BY id",
        (str(item),))]


def test_duplicate_skipped_failing_step_retried_alone_then_dead_letter_and_audit(db, stub_broker, stub_worker,
                                                                                  flush_audit):
    # Given item 1 whose whatsapp step fails once, sent twice with the same key
    first = steps_actor.send(item=1, fail={"whatsapp": 1})
    duplicate = steps_actor.send(item=1, fail={"whatsapp": 1})
    # When the worker drains the queue
    stub_broker.join("testing")
    stub_worker.join()
    flush_audit()
    # Then the duplicate enqueue returned the first message, and nothing ran twice
    assert duplicate.message_id == first.message_id
    assert [calls(1, s) for s in ("mailchimp", "whatsapp", "crm")] == [1, 2, 1]
    info = job_state.get_job(first.message_id)
    assert info.state == "completed" and info.attempt == 2
    assert info.result == {"mailchimp": "mailchimp-1", "crm": "crm-1", "whatsapp": "whatsapp-1"}
    # And the audit log tells the story: a retried attempt, then a completed one with per-step outcomes
    assert audit_story(db, 1) == [("retried", 1), ("completed", 2)]
    last = db.execute("SELECT action, metadata FROM audit_log WHERE entity_id = '1' ORDER BY id DESC").fetchone()
    assert last["action"] == "testing.automated"
    assert last["metadata"]["steps"]["mailchimp"] == {"status": "success", "detail": "already done"}
    assert last["metadata"]["steps"]["whatsapp"] == {"status": "success"}

    # Given item 2 whose crm step always fails
    dead = steps_actor.send(item=2, fail={"crm": 99})
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    flush_audit()
    # Then after three attempts it is in dead_letters with its traceback, and only crm was repeated
    letter = db.execute("SELECT * FROM dead_letters WHERE message_id = %s", (dead.message_id,)).fetchone()
    assert letter["attempts"] == 3 and letter["error_type"] == "TransientError"
    assert "Traceback" in letter["traceback"] and "crm unavailable" in letter["traceback"]
    assert letter["payload"] == {"args": [], "kwargs": {"item": 2, "fail": {"crm": 99}}}
    assert [calls(2, s) for s in ("mailchimp", "whatsapp", "crm")] == [1, 1, 3]
    assert audit_story(db, 2) == [("retried", 1), ("retried", 2), ("dead", 3)]
    assert job_state.get_job(dead.message_id).state == "dead"


def test_redelivery_of_a_completed_key_is_skipped_and_counted(db, stub_broker, stub_worker, flush_audit):
    from cep_automation.records import metrics

    before = metrics.job_metrics().skips.labels("testing", "testing.steps")._value.get()
    message = steps_actor.send(item=3)
    stub_broker.join("testing")
    stub_worker.join()
    # The same message delivered again (at-least-once delivery after a lost ack)
    stub_broker.enqueue(message)
    stub_broker.join("testing")
    stub_worker.join()
    flush_audit()
    assert calls(3, "mailchimp") == 1
    assert metrics.job_metrics().skips.labels("testing", "testing.steps")._value.get() == before + 1
    assert [r["status"] for r in db.execute("SELECT status FROM audit_log WHERE message_id = %s ORDER BY id",
                                            (message.message_id,))] == ["completed", "skipped"]
