"""Nothing waits for luck: a dead worker's messages and a live worker's delayed retries run within bounded time.

No janitor here (the other fault tests trigger Dramatiq's maintenance by hand): the workers themselves must
requeue a killed worker's messages within ``CEP_HEARTBEAT_TIMEOUT_MS`` + the sweep interval, and a retry
that waits in a live worker's delay queue when Redis restarts must still run.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from faultkit import Gate
from loadkit import effects_at_fakes, stories, unsettled, wait_settled

from cep_automation.middleware.broker_state import SWEEP_EVERY_S
from cep_automation.testing import wait_for
from cep_automation.testing.fakes import Recorded, Reply

pytestmark = pytest.mark.slow
THREADS = 2
HEARTBEAT_MS = 5000
# The promise: back in the queue within the heartbeat timeout plus one sweep; the rest is the jobs' own time.
BOUND_S = HEARTBEAT_MS / 1000 + SWEEP_EVERY_S + 30


def test_a_killed_workers_messages_run_on_a_live_worker_within_the_bound(
        db, sandbox, fault_env, workers, leads, producer, cep_services, redis_client, whatsapp_statuses):
    # Given two workers, one of which every WhatsApp request of the first leads is held on
    load = leads(db, 12)
    # (a send the kill cut before it left has no confirmation coming: it waits the grace, then goes)
    env = fault_env(WHATSAPP_RATE_LIMIT="1000", CEP_HEARTBEAT_TIMEOUT_MS=str(HEARTBEAT_MS),
                    WHATSAPP_CONFIRM_GRACE_S="10")
    doomed = workers(env, threads=THREADS)
    gate = Gate(sandbox.whatsapp)
    gate.hold()
    messages = producer().send_leads(load)
    wait_for(lambda: gate.held >= THREADS, what="the doomed worker's threads to wait on WhatsApp")
    # When that worker is killed with its messages fetched and unacknowledged, and a live worker runs on
    doomed.kill_worker_process()
    doomed.wait(timeout=60)
    gate.release(drop=False)  # WhatsApp sends what it received; its status webhook confirms it
    workers(env, threads=THREADS)
    killed_at = time.monotonic()
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace,
                          timeout=BOUND_S, idle_s=BOUND_S)
    # Then every lead completed within the bound, nobody having run Dramatiq's maintenance by hand
    lost = unsettled(ledger, load, messages)
    assert not lost, (f"{len(lost)} lead(s) not done {time.monotonic() - killed_at:.0f} s after the kill:\n"
                      + "\n".join(stories(ledger, lost, messages)))
    effects = effects_at_fakes(sandbox, load)
    assert all(effects.of(lead) == (1, 1, 1, 1, True) for lead in load)


class FirstCallWaits:
    """WhatsApp answers each lead's first message with 429 ``Retry-After: 4``, so every job goes to the delay
    queue once; ``parked`` tells when a request was refused."""

    def __init__(self, fake: object) -> None:
        self.seen: set[str] = set()
        self.refused = 0
        self._lock = threading.Lock()
        handle = fake.handle  # type: ignore[attr-defined]

        def serve(request: Recorded) -> Reply:
            to = (request.json or {}).get("to", "")
            with self._lock:
                first = to not in self.seen
                self.seen.add(to)
                self.refused += first
            if first:
                return fake.error(4, 429, headers={"Retry-After": "4"})  # type: ignore[attr-defined, no-any-return]
            return handle(request)  # type: ignore[no-any-return]

        fake.handle = serve  # type: ignore[attr-defined]


def test_retries_waiting_in_a_live_workers_delay_queue_survive_a_redis_restart(
        db, sandbox, fault_env, workers, leads, producer, private_redis, cep_services):
    # Given a worker on a Redis of its own, and leads whose first WhatsApp is refused with Retry-After
    load = leads(db, 8)
    # (A send cut by the crash cannot tell whether it left, and waits for WhatsApp's confirmation up to the grace)
    env = fault_env(REDIS_URL=private_redis.url, BROKER_URL=private_redis.url, WHATSAPP_RATE_LIMIT="1000",
                    CEP_HEARTBEAT_TIMEOUT_MS=str(HEARTBEAT_MS), WHATSAPP_CONFIRM_GRACE_S="10")
    refusals = FirstCallWaits(sandbox.whatsapp)
    worker = workers(env, threads=THREADS)
    client = redis.Redis.from_url(private_redis.url)
    messages = producer(private_redis.url).send_leads(load)
    namespace = cep_services.namespace
    # When the retries sit in the worker's in-memory delay queue (fetched, unacknowledged) ...
    wait_for(lambda: sum(client.scard(k) for k in client.scan_iter(match=f"{namespace}:__acks__.*.leads.DQ")) > 0,
             timeout=60, what="retries held in the worker's delay queue")
    # ... and Redis crashes and comes back (append-only file: it keeps its data)
    private_redis.kill()
    time.sleep(1)
    private_redis.start()
    ledger = wait_settled(cep_services.database_url, load, messages, client, namespace, timeout=BOUND_S,
                          idle_s=BOUND_S)
    # Then the worker is alive and every lead completed, its retry included
    assert worker.proc.poll() is None
    lost = unsettled(ledger, load, messages)
    assert not lost, f"{len(lost)} lead(s) stranded:\n" + "\n".join(stories(ledger, lost, messages))
    assert refusals.refused >= len(load)
    effects = effects_at_fakes(sandbox, load)
    assert all(max(effects.of(lead)[:4]) <= 1 for lead in load)
