"""``kill -9`` of a worker process mid-run: its messages come back, and every lead's effects happen exactly once.

The kill lands while every worker thread waits for WhatsApp to accept a message (a :class:`~faultkit.Gate`
holds the requests), so each job dies mid-way with some steps done and some not; the held requests are then
carried out, as a real provider finishes a request whose client vanished. The redelivered jobs learn from
WhatsApp's status webhook (our reference in ``biz_opaque_callback_data``) that those messages went, and do
not send them again. The last test pins down the limit: with no status webhook, a send that may have gone is
repeated once the grace period is over.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from faultkit import Gate
from loadkit import (
    STEPS,
    effects_at_fakes,
    live_count,
    read_ledger,
    states_completed,
    stories,
    unsettled,
    wait_settled,
)

from cep_automation.records import job_state
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
THREADS = 4
REPLAYED = "done in an earlier attempt"
# The janitor may declare a broker process dead after 5 s of silence; a live worker speaks every second.
SILENT_MS = 5000


def caught_up(database_url, load, messages):
    """Every job that recorded its last step has its audit row and its "completed" state (both are written in
    batches, a fraction of a second later, and a kill -9 takes unwritten ones along)."""
    ledger = read_ledger(database_url, load)
    finished = [lead for lead in load if "live_stats" in ledger.steps[lead.id]]
    return (len(finished) == sum(ledger.completed(lead) for lead in load)
            and all(job_state.get_job(messages[lead.id]).state == "completed" for lead in finished))


def orphans(redis_client, namespace):
    """Messages fetched by some worker and not acknowledged (what a dead worker leaves behind)."""
    return sum(redis_client.scard(name) for name in redis_client.scan_iter(match=f"{namespace}:__acks__.*.leads"))


@dataclass(frozen=True)
class Killed:
    """The jobs a kill cut short: those held at WhatsApp, and every job with a step recorded and no completion."""

    held: set[str]  # lead ids
    started: set[str]  # lead ids; held ⊆ started


def started_not_completed(redis_client, namespace, database_url, load):
    """Leads whose job had recorded a step (or an intent to send) and had not completed: the jobs a redelivery
    replays. Steps run at once, so a job need not be waiting on WhatsApp to be part-way."""
    ledger = read_ledger(database_url, load)
    in_redis = {lead.id for lead in load for kind in ("held", "intent")
                if redis_client.exists(f"{namespace}:effects:{kind}:lead.created:{lead.id}")}
    return {lead.id for lead in load if (lead.id in in_redis or ledger.steps[lead.id]) and not ledger.completed(lead)}


def kill_while_waiting_on_whatsapp(worker, sandbox, load, messages, database_url, redis_client, namespace):
    """Hold WhatsApp until every thread waits on it, let the finished jobs' records land, then SIGKILL."""
    gate = Gate(sandbox.whatsapp)
    gate.hold()
    wait_for(lambda: gate.held >= THREADS, what="every worker thread to wait on WhatsApp")
    wait_for(lambda: caught_up(database_url, load, messages), what="the audit and job-state writers to catch up")
    worker.kill_worker_process()
    worker.wait(timeout=60)  # the Dramatiq CLI exits when its worker process dies
    started = started_not_completed(redis_client, namespace, database_url, load)
    gate.release(drop=False)  # WhatsApp sends what it received, though nobody waits for the answer
    by_name = {lead.name: lead.id for lead in load}
    return Killed({by_name[name] for name in gate.held_leads}, started)


@pytest.mark.parametrize("count, kills", [(60, 1), pytest.param(240, 3, marks=pytest.mark.heavy)])
def test_kill_9_mid_run_loses_nothing_and_sends_each_message_once(
        count, kills, db, sandbox, fault_env, workers, leads, producer, janitor, cep_services, redis_client,
        whatsapp_statuses):
    # Given a load of leads and a worker with four threads working through it
    load = leads(db, count)
    # No rate-limit retries (only the killed jobs may replay steps); a send the kill cut before it left waits 10 s
    env = fault_env(WHATSAPP_RATE_LIMIT="1000", WHATSAPP_CONFIRM_GRACE_S="10")
    worker = workers(env, threads=THREADS)
    messages = producer().send_leads(load)
    held, started = set(), set()
    for kill in range(1, kills + 1):
        # When, part-way through, every worker thread is waiting on WhatsApp and the worker process is killed
        share = 2 * count * kill // (kills + 2)
        wait_for(lambda share=share: janitor(SILENT_MS) or len(sandbox.whatsapp.messages) >= share, timeout=120,
                 what="part of the load to be done")
        killed = kill_while_waiting_on_whatsapp(worker, sandbox, load, messages, cep_services.database_url,
                                                redis_client, cep_services.namespace)
        held, started = held | killed.held, started | killed.started
        # Then its fetched messages are left unacknowledged, not lost
        assert orphans(redis_client, cep_services.namespace) >= THREADS
        # When a new worker starts and Dramatiq requeues the dead worker's messages
        worker = workers(env, threads=THREADS)
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace,
                          poke=lambda: janitor(SILENT_MS))

    # Then every lead completed exactly once, with every step in the ledger and nothing dead-lettered
    assert ledger.letters == {}
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, "\n".join(stories(ledger, lost, messages))
    assert all(ledger.completed(lead) == 1 for lead in load)
    assert all(ledger.steps[lead.id] == set(STEPS) for lead in load)
    assert states_completed(load, messages)
    # And each provider acted once per lead: WhatsApp to the lead and to its advisor, the email, the CRM, Mailchimp
    effects = effects_at_fakes(sandbox, load)
    assert {lead.name: effects.of(lead) for lead in load} == {lead.name: (1, 1, 1, 1, True) for lead in load}
    assert live_count(redis_client, cep_services.namespace) == count
    # And the jobs killed waiting on WhatsApp were redelivered and replayed the steps they had done; no job the
    # kill did not cut short replayed anything
    assert_replayed(ledger, load, held, started)


def assert_replayed(ledger, load, held, started):
    replayed = {lead.id for lead in load for row in ledger.audit[lead.id]
                if any(s.get("detail") == REPLAYED for s in row["metadata"].get("steps", {}).values())}
    assert held and held <= replayed
    assert replayed <= started


def crash_after_whatsapp_accepted(sandbox, workers, leads, producer, janitor, redis_client, cep_services, db,
                                  env=None):
    """WhatsApp accepts the job's two messages (to the lead and to its advisor, sent at once) but their answers
    never reach the worker, which is killed then; a new worker gets the message again. Returns the lead and the
    settled ledger."""
    (lead,) = load = leads(db, 1)
    gate = Gate(sandbox.whatsapp, after_answer=True)
    gate.hold()
    worker = workers(env, threads=1)
    messages = producer().send_leads(load)
    wait_for(lambda: gate.held == 2, what="WhatsApp to hold its two answers")
    worker.kill_worker_process()
    worker.wait(timeout=60)
    gate.release(drop=False)
    workers(env, threads=1)
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace,
                          poke=lambda: janitor(SILENT_MS))
    return lead, ledger


def test_a_crash_after_whatsapp_accepted_is_reconciled_not_resent(db, sandbox, workers, leads, producer, janitor,
                                                                  redis_client, cep_services, whatsapp_statuses):
    # Given WhatsApp reports every accepted message to our status webhook with our reference, as it does
    # When the worker dies after WhatsApp accepted the lead's message and before the ledger recorded it
    lead, ledger = crash_after_whatsapp_accepted(sandbox, workers, leads, producer, janitor, redis_client,
                                                 cep_services, db)
    # Then the job completed once, and the redelivery learnt from WhatsApp's confirmation that the message went:
    # it was not sent again
    assert ledger.completed(lead) == 1
    steps = ledger.audit[lead.id][-1]["metadata"]["steps"]
    assert steps["mailchimp"] == {"status": "success", "detail": REPLAYED}
    assert steps["whatsapp_lead"] == {"status": "success", "detail": REPLAYED}
    assert effects_at_fakes(sandbox, [lead]).of(lead) == (1, 1, 1, 1, True)


def test_without_a_confirmation_the_send_is_repeated_after_the_grace(db, sandbox, fault_env, workers, leads,
                                                                     producer, janitor, redis_client, cep_services):
    """The limit of exactly-once, written down: when WhatsApp's status never reaches us (no webhook), a send
    that may have gone is repeated once the grace period is over, rather than never made."""
    env = fault_env(WHATSAPP_CONFIRM_GRACE_S="3")
    lead, ledger = crash_after_whatsapp_accepted(sandbox, workers, leads, producer, janitor, redis_client,
                                                 cep_services, db, env=env)
    assert ledger.completed(lead) == 1
    assert effects_at_fakes(sandbox, [lead]).of(lead) == (2, 2, 1, 1, True)
