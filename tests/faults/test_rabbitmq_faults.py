"""The kill -9 and broker-restart faults with ``BROKER_URL=amqp://…``: workers on the local RabbitMQ, in queues of
this test's own namespace, with Redis and PostgreSQL beside it as in production.

RabbitMQ gives a dead consumer's unacknowledged messages back the moment its connection drops, so no janitor
runs here. The restart is of the RabbitMQ application itself (``rabbitmqctl stop_app`` / ``start_app``): its
durable queues and persistent messages come back from disk, and every connection is cut, as when the node
restarts. It runs while every worker thread waits on WhatsApp, so those jobs end while the broker is away and
their acknowledgements are lost with the connection.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from faultkit import while_threads_wait
from loadkit import (
    STEPS,
    Producer,
    effects_at_fakes,
    live_count,
    states_completed,
    stories,
    unsettled,
    wait_settled,
)
from test_kill_worker import THREADS, assert_replayed, kill_while_waiting_on_whatsapp

from cep_automation.records import broker_state
from cep_automation.testing import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]
DOWN_S = 5


class RabbitProducer(Producer):
    """:class:`loadkit.Producer` on a RabbitMQ broker of the test's namespace."""

    def __init__(self, rabbitmq) -> None:
        self.broker = rabbitmq.broker()


@pytest.fixture
def rabbit_run(rabbitmq, db, sandbox, fault_env, workers, leads, redis_client, cep_services, whatsapp_statuses):
    """What each test needs: ``start(count)`` inserts the leads, starts a RabbitMQ worker and sends them;
    ``settle()`` waits until each lead is completed or dead-lettered, or RabbitMQ has held none for a while."""
    run = type("RabbitRun", (), {})()
    run.env = fault_env(BROKER_URL=rabbitmq.url, CEP_NAMESPACE=rabbitmq.namespace, WHATSAPP_RATE_LIMIT="1000",
                        WHATSAPP_CONFIRM_GRACE_S="10")

    def start(count):
        run.load = leads(db, count)
        run.worker = workers(run.env, threads=THREADS)
        run.messages = RabbitProducer(rabbitmq).send_leads(run.load)

    def broker_empty():
        return rabbitmq.messages("leads") == 0 and not redis_client.llen(f"{rabbitmq.namespace}:dlq:spool")

    run.start = start
    run.settle = lambda: wait_settled(cep_services.database_url, run.load, run.messages, redis_client,
                                      rabbitmq.namespace, broker_empty=broker_empty)
    return run


def test_kill_9_of_a_rabbitmq_worker_loses_nothing_and_sends_each_message_once(
        rabbitmq, rabbit_run, sandbox, workers, redis_client, cep_services):
    # Given 60 leads and a RabbitMQ worker with four threads working through them
    count = 60
    rabbit_run.start(count)
    load, messages = rabbit_run.load, rabbit_run.messages
    # When, part-way through, every worker thread waits on WhatsApp and the worker process is killed
    wait_for(lambda: len(sandbox.whatsapp.messages) >= count // 2, timeout=120, what="part of the load to be done")
    killed = kill_while_waiting_on_whatsapp(rabbit_run.worker, sandbox, load, messages, cep_services.database_url,
                                            redis_client, rabbitmq.namespace)
    # Then RabbitMQ has the messages it held back in the namespaced queue, ready, as our readers count them
    wait_for(lambda: broker_state.waiting_and_delayed()[("leads", "waiting")] >= THREADS,
             what="the dead worker's messages back in the queue")
    # When a new worker starts
    workers(rabbit_run.env, threads=THREADS)
    ledger = rabbit_run.settle()

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
    assert live_count(redis_client, rabbitmq.namespace) == count
    # And the jobs killed mid-way were redelivered and replayed the steps they had done (no other job was)
    assert_replayed(ledger, load, killed.held, killed.started)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_rabbitmq_restarted_mid_run_loses_nothing(rabbitmq, rabbit_run, sandbox, redis_client):
    # Given 60 leads and a RabbitMQ worker with four threads working through them
    count = 60
    rabbit_run.start(count)
    load, messages = rabbit_run.load, rabbit_run.messages
    # When RabbitMQ stops while every worker thread waits on WhatsApp, stays down, and starts again
    wait_for(lambda: len(sandbox.whatsapp.messages) >= count // 2, timeout=120, what="part of the load")
    try:
        while_threads_wait(sandbox.whatsapp, THREADS, lambda: rabbitmqctl("stop_app"))
        time.sleep(DOWN_S)  # the outage itself; nothing is measured
    finally:
        rabbitmqctl("start_app")
    ledger = rabbit_run.settle()

    # Then the worker survived, and every lead completed or went to the dead letters saying why
    assert rabbit_run.worker.proc.poll() is None
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, f"{len(lost)} lead(s) lost:\n" + "\n".join(stories(ledger, lost, messages))
    dead = {lead.id: ledger.letters[messages[lead.id]] for lead in load if messages[lead.id] in ledger.letters}
    assert all(letter["error_type"] and letter["error_message"] for letter in dead.values())
    assert all(ledger.completed(lead) == 1 for lead in load if lead.id not in dead)
    # And no provider acted twice for a lead
    effects = effects_at_fakes(sandbox, load)
    assert all(max(effects.of(lead)[:4]) <= 1 for lead in load)
    assert all(effects.of(lead) == (1, 1, 1, 1, True) for lead in load if lead.id not in dead)
    assert live_count(redis_client, rabbitmq.namespace) == count - len(dead)
