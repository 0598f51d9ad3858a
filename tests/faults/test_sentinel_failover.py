"""Redis Sentinel: workers on ``REDIS_URL=redis+sentinel://…`` through a primary failover mid-run.

The broker, our own keys (idempotency, job state, the ledger's notes, rate limits) and the health check all
reach Redis through the sentinels. The failover lands while every worker thread waits on WhatsApp; afterwards
every lead must be completed or dead-lettered saying why, and no provider may act twice for one.

Exactly one run per lead is not asked for: replication is asynchronous, and ``SENTINEL FAILOVER`` promotes the
replica before it tells the old primary, which meanwhile takes fetches, acks and idempotency outcomes that the
new primary never sees. A job whose ack was lost so runs again (a few of 60 here) and finds every step in the
effects ledger: the guarantee is at the providers. A copy fetched again while the first still runs is dropped
by the consumer (:mod:`cep_automation.broker.consumer`) — before that, both ran at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from faultkit import skip_unless_ci, while_threads_wait
from loadkit import Lead, effects_at_fakes, stories, unsettled, wait_settled
from sentinelkit import SentinelGroup

from cep_automation.db.redis_client import check_redis
from cep_automation.db.sentinel import broker_connection, redis_from_url
from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
THREADS = 4


@pytest.fixture
def sentinels(tmp_path):
    try:
        group = SentinelGroup(tmp_path / "sentinel").start()
    except LookupError as exc:
        skip_unless_ci(str(exc))
    yield group
    group.stop()


def send_leads(url: str, namespace: str, load: list[Lead]) -> dict[str, str]:
    """Lead id → message id, sent through the sentinels as any producer on this URL would."""
    broker: Any = RedisBroker(**broker_connection(url), namespace=namespace, middleware=[])
    try:
        return {lead.id: broker.enqueue(Message(queue_name="leads", actor_name="lead.created", args=(),
                                                kwargs={"lead_id": lead.id},
                                                options={"idempotency_key": f"lead.created:{lead.id}"})).message_id
                for lead in load}
    finally:
        broker.close()


def test_a_primary_failover_mid_run_loses_no_job(sentinels, db, sandbox, fault_env, workers, leads, cep_services):
    # Given workers that know Redis only through its sentinels, working through a load of leads
    url, count = sentinels.url, 60
    env = fault_env(REDIS_URL=url, BROKER_URL=url)
    load = leads(db, count)
    worker = workers(env, threads=THREADS)
    messages = send_leads(url, cep_services.namespace, load)
    client = redis_from_url(url)
    client.wait(1, 5000)  # the queued messages are on the replica too before the failover
    old_primary = sentinels.primary_port()
    # When the sentinels promote the replica while every worker thread waits on WhatsApp
    wait_for(lambda: len(sandbox.whatsapp.messages) >= count // 3, timeout=120, what="part of the load")
    while_threads_wait(sandbox.whatsapp, THREADS, sentinels.failover)
    ledger = wait_settled(cep_services.database_url, load, messages, client, cep_services.namespace)

    # Then the primary moved, the worker survived and followed it, and every lead completed or was dead-lettered
    assert sentinels.primary_port() != old_primary
    assert worker.proc.poll() is None
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, f"{len(lost)} lead(s) lost:\n" + "\n".join(stories(ledger, lost, messages))
    dead = {lead.id for lead in load if messages[lead.id] in ledger.letters}
    assert all(ledger.completed(lead) >= 1 for lead in load if lead.id not in dead)
    # And no provider acted twice for a lead, even for a job run again after its ack was lost
    effects = effects_at_fakes(sandbox, load)
    twice = [lead for lead in load if max(effects.of(lead)[:4]) > 1]
    assert not twice, "\n".join(stories(ledger, twice, messages))
    # And the health check follows the sentinels to the new primary
    check_redis(url)
