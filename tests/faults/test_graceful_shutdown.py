"""SIGTERM while jobs run (a deploy): in-flight jobs finish, fetched ones go back to the queue, a new worker
does the rest, and every provider acts exactly once per lead."""

from __future__ import annotations

import pytest
from faultkit import InFlight
from loadkit import STEPS, effects_at_fakes, read_ledger, wait_settled

from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
THREADS = 4


def leftovers(redis_client, namespace):
    """(messages waiting in the queue, messages fetched and not acknowledged) for ``leads``."""
    waiting = redis_client.llen(f"{namespace}:leads")
    fetched = sum(redis_client.scard(name) for name in redis_client.scan_iter(match=f"{namespace}:__acks__.*.leads"))
    return waiting, fetched


@pytest.mark.parametrize("count", [40, pytest.param(200, marks=pytest.mark.heavy)])
def test_sigterm_finishes_in_flight_jobs_and_requeues_the_rest(count, db, sandbox, workers, leads, producer,
                                                              redis_client, cep_services):
    # Given a slow WhatsApp (so that SIGTERM finds jobs in flight) and a worker working through a load
    in_flight = InFlight(sandbox.whatsapp, delay_s=0.2)
    load = leads(db, count)
    worker = workers(threads=THREADS)
    messages = producer().send_leads(load)
    wait_for(lambda: len(sandbox.whatsapp.messages) >= count // 2, timeout=120, what="part of the load")
    # When the worker gets SIGTERM while jobs are waiting on WhatsApp
    busy = wait_for(in_flight.snapshot, what="jobs in flight")
    worker.terminate()
    # Then it exits cleanly
    assert worker.wait(timeout=120) == 0
    ledger = read_ledger(cep_services.database_url, load)
    done = [lead for lead in load if ledger.completed(lead)]
    # And the jobs that were in flight finished, with every step and their audit row (flushed at shutdown)
    assert busy <= {lead.name for lead in done}
    assert all(ledger.steps[lead.id] == set(STEPS) for lead in done)
    assert all(not ledger.steps[lead.id] for lead in load if lead not in done)
    # And every other message is back in the queue, none left fetched-but-unacknowledged
    assert leftovers(redis_client, cep_services.namespace) == (count - len(done), 0)

    # When a new worker starts
    workers(threads=THREADS)
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace)
    # Then every lead completed exactly once, and each provider acted exactly once per lead
    assert ledger.letters == {}
    assert all(ledger.completed(lead) == 1 for lead in load)
    effects = effects_at_fakes(sandbox, load)
    assert {lead.name: effects.of(lead) for lead in load} == {lead.name: (1, 1, 1, 1, True) for lead in load}
