"""PostgreSQL stopped mid-run (30 s): leads, the effects ledger, audit rows and dead letters all live there.

The server stops while every worker thread waits on WhatsApp, so those jobs meet the outage right after a
provider acted (their effects are held in Redis until the ledger can take them); jobs fetched during the
outage cannot even load their lead and are retried; two invalid messages sent during the outage are
dead-lettered into the Redis spool. Afterwards every lead is completed or in the dead letters with its
reason, and an operator finishes the rest with the ``dlq`` commands.
"""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest
from faultkit import while_threads_wait
from loadkit import effects_at_fakes, stories, unsettled, wait_settled
from psycopg.rows import dict_row

from cep_automation.testing import CLI, wait_for

pytestmark = pytest.mark.slow
THREADS = 4


def dlq(env, *args):
    out = subprocess.run([*CLI, "dlq", *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def letters(database_url, message_ids):
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return {row["message_id"]: row for row in conn.execute(
            "SELECT * FROM dead_letters WHERE message_id = ANY(%s)", (list(message_ids),))}


@pytest.mark.parametrize("count, down_s", [(40, 30), pytest.param(200, 90, marks=pytest.mark.heavy)])
def test_postgres_stopped_mid_run_loses_nothing(count, down_s, private_postgres, sandbox, fault_env, workers, leads,
                                                producer, redis_client, cep_services):
    # Given a worker on a PostgreSQL of its own, working through a load of leads
    env = fault_env(DATABASE_URL=private_postgres.url)
    with psycopg.connect(private_postgres.url, autocommit=True, row_factory=dict_row) as conn:
        load = leads(conn, count)
    worker = workers(env, threads=THREADS)
    send = producer()
    messages = send.send_leads(load)
    # When PostgreSQL stops while every worker thread waits on WhatsApp, stays down, and starts again,
    # and two messages that can never run arrive during the outage
    wait_for(lambda: len(sandbox.whatsapp.messages) >= count // 2, timeout=120, what="part of the load")
    while_threads_wait(sandbox.whatsapp, THREADS, private_postgres.stop)
    invalid = [send.send("lead.created", lead_id="not-a-uuid").message_id,
               send.send("lead.created", lead_id="00000000-0000-0000-0000-00000000000x").message_id]
    time.sleep(down_s)  # the outage itself; nothing is measured
    private_postgres.start()
    ledger = wait_settled(private_postgres.url, load, messages, redis_client, cep_services.namespace)

    # Then the worker survived, and every lead completed or went to the dead letters saying why
    assert worker.proc.poll() is None
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, f"{len(lost)} lead(s) lost:\n" + "\n".join(stories(ledger, lost, messages))
    dead = [lead for lead in load if messages[lead.id] in ledger.letters]
    assert all(ledger.letters[messages[lead.id]]["error_message"] for lead in dead)
    # And the invalid messages, dead-lettered while PostgreSQL was down, reached the table from the spool
    spooled = wait_for(lambda: (found := letters(private_postgres.url, invalid)) and len(found) == 2 and found,
                       timeout=30, what="the spooled dead letters")
    assert {row["error_type"] for row in spooled.values()} == {"PayloadError"}
    # And no provider acted twice for any lead, although some acted just before the ledger went away
    effects = effects_at_fakes(sandbox, load)
    assert {lead.name: effects.of(lead) for lead in load if max(effects.of(lead)[:4]) > 1} == {}

    # When an operator retries the dead leads and discards the invalid messages
    if dead:
        dlq(env, "retry", "--all", "--actor", "lead.created")
        retried = letters(private_postgres.url, [messages[lead.id] for lead in dead])
        new_ids = {lead.id: retried[messages[lead.id]]["retried_message_id"] for lead in dead}
        wait_settled(private_postgres.url, dead, new_ids, redis_client, cep_services.namespace)
    for row in spooled.values():
        dlq(env, "discard", str(row["id"]), "--reason", "invalid lead id from a test producer")
    # Then every lead has been followed up, each provider acting exactly once per lead, and no letter is open
    effects = effects_at_fakes(sandbox, load)
    assert {lead.name: effects.of(lead) for lead in load} == {lead.name: (1, 1, 1, 1, True) for lead in load}
    assert "\t" not in dlq(env, "list", "--status", "dead")
