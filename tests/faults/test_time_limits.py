"""A job that overruns its time limit is stopped, retried, and then dead-lettered with the reason; the worker
thread it held is free again for the next job."""

from __future__ import annotations

import psycopg
import pytest
from loadkit import effects_at_fakes, unsettled, wait_settled
from psycopg.rows import dict_row

from cep_automation.db.redis_client import key
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow


def test_an_overrunning_job_is_stopped_retried_and_dead_lettered(db, sandbox, fault_env, workers, leads, producer,
                                                                  redis_client, cep_services):
    # Given a worker with one thread, and a job that would run for 30 s with a time limit of 1 s
    workers(fault_env(), threads=1, modules=("crash_actors",))
    send = producer()
    overrun = send.send("faults.overrun", seconds=30).message_id
    # When it runs
    def letter():
        with psycopg.connect(cep_services.database_url, row_factory=dict_row) as conn:
            return conn.execute("SELECT * FROM dead_letters WHERE message_id = %s", (overrun,)).fetchone()

    found = wait_for(letter, timeout=60, what="the overrunning job's dead letter")
    # Then each attempt was stopped at its limit, retried once, and dead-lettered saying so
    assert found["error_type"] == "TimeLimitExceeded" and found["attempts"] == 2
    assert int(redis_client.get(key("test", "overrun", "attempts"))) == 2
    # And the thread is free: a lead sent afterwards is followed up
    load = leads(db, 1)
    messages = send.send_leads(load)
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace)
    assert not unsettled(ledger, load, messages)
    assert effects_at_fakes(sandbox, load).of(load[0]) == (1, 1, 1, 1, True)
