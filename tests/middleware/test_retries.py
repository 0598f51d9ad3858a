"""Retries: Retry-After is honoured, permanent errors are never retried."""

from __future__ import annotations

from dramatiq import Middleware
from sample_actors import calls, steps_actor

from cep_automation.errors import TransientError


def test_transient_error_carries_retry_after_as_the_delay():
    assert TransientError("429", retry_after=7).delay == 7000
    assert TransientError("timeout").delay is None


class DelayRecorder(Middleware):
    """Notes the delay of every retry enqueue."""

    def __init__(self):
        self.delays = []

    def after_enqueue(self, broker, message, delay):
        if message.options.get("retries") and delay:
            self.delays.append(delay)


def test_retry_after_is_used_as_the_delay(db, stub_broker, stub_worker):
    recorder = DelayRecorder()
    stub_broker.add_middleware(recorder)
    try:
        steps_actor.send(item=20, fail={"crm": 1})
        stub_broker.join("testing")
        stub_worker.join()
    finally:
        stub_broker.middleware.remove(recorder)
    # retry_after=0.05 s gives 50 ms, where the actor's exponential backoff would start at 20 ms with jitter
    assert recorder.delays == [50]
    assert calls(20, "crm") == 2


def test_permanent_error_is_not_retried(db, stub_broker, stub_worker):
    message = steps_actor.send(item=21, fail={"whatsapp": 99}, permanent=True)
    stub_broker.join("testing", fail_fast=False)
    stub_worker.join()
    assert calls(21, "whatsapp") == 1
    letter = db.execute("SELECT attempts, error_type FROM dead_letters WHERE message_id = %s",
                        (message.message_id,)).fetchone()
    assert letter == {"attempts": 1, "error_type": "PermanentError"}
