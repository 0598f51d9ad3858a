"""A poison message, one that kills its worker process every time, ends in the dead letters after a bounded
number of deliveries (:class:`~cep_automation.middleware.DeliveryLimit`) instead of looping for ever.

The test plays the process supervisor (systemd's ``Restart=always``): it restarts the worker each time the
poison kills it, and has Dramatiq requeue the dead worker's messages at once instead of after its heartbeat
timeout. The worker runs one thread, so no lead is ever in flight beside the poison: with more threads, a
lead killed mid-step beside it is redelivered (its count goes up too, see docs/reliability.md) and may repeat
the one step whose answer it had not yet recorded, which is the crash gap the kill -9 tests pin down.
"""

from __future__ import annotations

import psycopg
import pytest
from loadkit import STEPS, effects_at_fakes, unsettled, wait_settled
from psycopg.rows import dict_row

from cep_automation.middleware.delivery_limit import DEFAULT_MAX_DELIVERIES, ERROR_TYPE
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
CRASH_MODULES = ("crash_actors",)


def dead_letter(database_url, message_id):
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM dead_letters WHERE message_id = %s", (message_id,)).fetchone()


def test_a_message_that_kills_its_worker_is_dead_lettered_after_max_deliveries(
        db, sandbox, fault_env, workers, leads, producer, janitor, redis_client, cep_services):
    # Given leads queued around a message whose actor kills the worker process that runs it
    load = leads(db, 30)
    send = producer()
    messages = send.send_leads(load[:15])
    poison = send.send("faults.crash", reason="segfault").message_id
    messages |= send.send_leads(load[15:])
    # When a supervisor restarts the worker every time it dies
    crashes, worker = 0, None
    for _ in range(DEFAULT_MAX_DELIVERIES + 3):  # bounded: the loop must end by itself well before this
        worker = workers(threads=1, modules=CRASH_MODULES)
        wait_for(lambda w=worker: w.proc.poll() is not None or dead_letter(cep_services.database_url, poison),
                 timeout=120, what="the worker to die or the poison to be dead-lettered")
        if worker.proc.poll() is None:
            break
        crashes += 1
        janitor(1)  # no worker is alive: every unacknowledged message goes back to its queue now

    # Then the poison killed exactly max_deliveries workers, and the next delivery dead-lettered it, saying why
    assert crashes == DEFAULT_MAX_DELIVERIES
    letter = dead_letter(cep_services.database_url, poison)
    assert letter["error_type"] == ERROR_TYPE and letter["actor"] == "faults.crash"
    assert letter["attempts"] == DEFAULT_MAX_DELIVERIES + 1
    assert "died each time" in letter["error_message"]
    # And the last worker is still alive and finishes the load
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace,
                          audited=False)
    assert worker.proc.poll() is None
    assert len(unsettled(ledger, load, messages, audited=False)) == 0
    assert ledger.letters == {}
    # (a worker the poison kills takes its unwritten audit rows along: the effects ledger is the judge here)
    assert all(ledger.steps[lead.id] == set(STEPS) for lead in load)
    assert all(ledger.completed(lead) <= 1 for lead in load)
    # And every provider acted exactly once per lead
    effects = effects_at_fakes(sandbox, load)
    assert {lead.name: effects.of(lead) for lead in load} == {lead.name: (1, 1, 1, 1, True) for lead in load}

