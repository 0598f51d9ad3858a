"""An actor that kills its own worker process, loaded by worker processes of the poison-message tests::

    dramatiq cep_automation.actors crash_actors --queues leads

It also adds :class:`~cep_automation.middleware.DeliveryLimit` to the broker when the broker's own stack
(``cep_automation/broker.py``) does not have it yet, at the place the stack documents for it.
"""

from __future__ import annotations

import os
import signal
import time

import dramatiq

from cep_automation.actors import broker
from cep_automation.middleware import DeliveryLimit, Idempotency

if not any(isinstance(m, DeliveryLimit) for m in broker.middleware):
    broker.add_middleware(DeliveryLimit(), before=Idempotency)


@dramatiq.actor(actor_name="faults.crash", queue_name="leads", max_retries=0, time_limit=20_000)
def crash(reason: str = "segfault") -> None:
    """Dies as a segfault in a C extension or the OOM killer would: no exception, no ack, no after-hook."""
    os.kill(os.getpid(), signal.SIGKILL)


@dramatiq.actor(actor_name="faults.overrun", queue_name="leads", max_retries=1, min_backoff=100, max_backoff=100,
                time_limit=1_000)
def overrun(seconds: float = 30.0) -> None:
    """Runs past its one-second time limit, as a job stuck on a provider that never answers would."""
    from cep_automation.db.redis_client import get_redis, key

    get_redis().incr(key("test", "overrun", "attempts"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # Python code, so Dramatiq's TimeLimit can interrupt it
        time.sleep(0.05)
