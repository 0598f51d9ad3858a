"""PayloadValidation: bad payloads are refused at send(), and dead-lettered without retries when processed."""

from __future__ import annotations

import pytest
from sample_actors import steps_actor

from cep_automation.errors import PayloadError
from cep_automation.records import job_state


def test_send_names_every_bad_field(stub_broker):
    with pytest.raises(PayloadError) as error:
        steps_actor.send(item=0, fail="often")
    assert error.value.errors == ["item: Input should be greater than or equal to 1",
                                  "fail: Input should be a valid dictionary"]
    assert stub_broker.queues["testing"].qsize() == 0


def test_send_with_an_unknown_argument(stub_broker):
    with pytest.raises(PayloadError, match="unexpected keyword argument 'colour'"):
        steps_actor.send(item=1, colour="blue")


def test_invalid_message_when_processed_goes_to_dead_letters_without_retries(db, stub_broker, stub_worker,
                                                                            flush_audit):
    # Given an invalid message that bypassed send() (an old producer writing to the queue)
    message = steps_actor.message_with_options(kwargs={"item": -5})
    stub_broker.queues["testing"].put(message.encode())
    # When it is processed
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    flush_audit()
    # Then it is dead at once, with the validation errors
    letter = db.execute("SELECT * FROM dead_letters WHERE message_id = %s", (message.message_id,)).fetchone()
    assert letter["error_type"] == "PayloadError" and "item: Input should be greater" in letter["error_message"]
    assert letter["attempts"] == 1
    assert job_state.get_job(message.message_id).state == "dead"
    audit = db.execute("SELECT status, metadata FROM audit_log WHERE message_id = %s", (message.message_id,)).fetchall()
    assert [a["status"] for a in audit] == ["dead"] and "item" in audit[0]["metadata"]["error"]
