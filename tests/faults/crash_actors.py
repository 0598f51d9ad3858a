"""An actor that kills its own worker process, loaded by worker processes of the poison-message tests::

    dramatiq cep_automation.actors crash_actors --queues leads

It also adds :class:`~cep_automation.middleware.DeliveryLimit` to the broker when the broker's own stack
(``cep_automation/broker.py``) does not have it yet, at the place the stack documents for it.
"""

from __future__ import annotations

import os
import signal

import dramatiq

from cep_automation.actors import broker
from cep_automation.middleware import DeliveryLimit, Idempotency

if not any(isinstance(m, DeliveryLimit) for m in broker.middleware):
    broker.add_middleware(DeliveryLimit(), before=Idempotency)


@dramatiq.actor(actor_name="faults.crash", queue_name="leads", max_retries=0, time_limit=20_000)
def crash(reason: str = "segfault") -> None:
    """Dies as a segfault in a C extension or the OOM killer would: no exception, no ack, no after-hook."""
    os.kill(os.getpid(), signal.SIGKILL)
