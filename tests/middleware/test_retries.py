"""Retries: Retry-After is honoured, permanent errors are never retried."""

from __future__ import annotations

import time

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import CurrentMessage
from sample_actors import calls, steps_actor

from cep_automation.backoff import exponential
from cep_automation.errors import TransientError
from cep_automation.queues import policy
from cep_automation.runtime.actor import CepActor


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


def test_the_delays_follow_the_curve_and_the_retries_wait_them(db, stub_broker, stub_worker):
    # Given a job that fails twice with no Retry-After, on a 2-4-8 curve scaled down to 200-400 ms
    attempts: list[tuple[float, int | None]] = []

    @dramatiq.actor(actor_name="testing.curve", queue_name="testing", max_retries=2,
                    backoff=exponential(200), actor_class=CepActor)
    def curve() -> None:
        message = CurrentMessage.get_current_message()
        attempts.append((time.monotonic(), message.options.get("cep_retry_delay_ms")))
        if len(attempts) < 3:
            raise TransientError("not yet")

    try:
        curve.send()
        stub_broker.join("testing")
        stub_worker.join()
    finally:
        stub_broker.actors.pop("testing.curve", None)
    # Then each retry was given the curve's delay (within its ±10% jitter) ...
    delays = [delay for _, delay in attempts[1:]]
    assert 180 <= delays[0] <= 220 and 360 <= delays[1] <= 440
    # ... and really waited at least that long (a worker can be late, never early)
    gaps = [(later - earlier) * 1000 for (earlier, _), (later, _) in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= delays[0] - 5 and gaps[1] >= delays[1] - 5


def test_the_policy_table_curves_are_what_the_table_says():
    assert policy("lead.created").backoff.describe(policy("lead.created").max_retries) == "2 s, 4 s"
    assert policy("backup.daily").backoff.describe(policy("backup.daily").max_retries) == "2 s"
    draws = [policy("lead.created").backoff.delay_ms(2) for _ in range(200)]
    assert min(draws) >= 3600 and max(draws) <= 4400


def test_a_retry_after_beyond_the_cap_is_dead_lettered_saying_so(db, stub_broker, stub_worker):
    # Given a provider that answers "retry in 2099"
    @dramatiq.actor(actor_name="testing.forever", queue_name="testing", max_retries=5, actor_class=CepActor)
    def forever() -> None:
        raise TransientError("429 Too Many Requests", retry_after=2_300_000_000)

    try:
        message = forever.send()
        stub_broker.join("testing", fail_fast=False)
        stub_worker.join()
    finally:
        stub_broker.actors.pop("testing.forever", None)
    # Then the job is not parked: it is in the dead letters, and the letter says why
    letter = db.execute("SELECT error_type, error_message FROM dead_letters WHERE message_id = %s",
                        (message.message_id,)).fetchone()
    assert letter["error_type"] == "RetryAfterTooLong"
    assert "over CEP_MAX_RETRY_AFTER_S (900 s)" in letter["error_message"]
