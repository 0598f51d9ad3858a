"""The effects ledger's round trips: steps run one after another in one thread ride their records with the next write
to Redis, none waiting past the next provider call unless the step's intent answers for it meanwhile; a counter step
and its record are one round trip; the first read comes with the job's idempotency claim."""

from __future__ import annotations

from cep_automation.records import effects, idempotency
from cep_automation.records.effects import Ledger


class Sends:
    """Provider calls that check, as they act, which earlier steps Redis already holds."""

    def __init__(self, redis_client, ledger: Ledger) -> None:
        self.redis, self.ledger = redis_client, ledger
        self.held_when_called: dict[str, set[str]] = {}
        self.intents_when_called: dict[str, set[str]] = {}
        self.confirmed: dict[str, str] = {}

    def plain(self, step: str):
        def call() -> str:
            self.held_when_called[step] = self._held()
            self.intents_when_called[step] = self.intents
            return f"id-{step}"
        return call

    def confirmable(self, step: str):
        def send(reference: str) -> str:
            self.held_when_called[step] = self._held()
            self.intents_when_called[step] = self.intents
            return f"wamid-{step}"
        return send

    def _held(self) -> set[str]:
        self.intents = {name.decode() for name in self.redis.hkeys(self.ledger._intent_key())}
        return {name.decode() for name in self.redis.hkeys(self.ledger._held_key())}


def run_lead_steps(ledger: Ledger, sends: Sends) -> None:
    ledger.run("mailchimp", sends.plain("mailchimp"))
    ledger.run_confirmable("whatsapp_lead", sends.confirmable("whatsapp_lead"), sends.confirmed.get, grace_s=60)
    ledger.run("confirmation_email", sends.plain("confirmation_email"))
    ledger.run_confirmable("whatsapp_advisor", sends.confirmable("whatsapp_advisor"), sends.confirmed.get, grace_s=60)
    ledger.run("crm", sends.plain("crm"))


def test_in_a_batch_records_ride_with_the_next_write_and_every_earlier_step_is_held_or_intended(db, redis_client):
    ledger = Ledger("lead.created:batched")
    sends = Sends(redis_client, ledger)
    ledger.done("mailchimp")  # read the (empty) steps first: that read is not a write
    before = effects._held_writes.round_trips
    with ledger.batched():
        run_lead_steps(ledger, sends)
    # Five records and two intents in three round trips (seven one by one): Mailchimp's record went with the first
    # WhatsApp intent; the email's and the first WhatsApp's with the second intent; the rest when the block ended.
    assert effects._held_writes.round_trips - before == 3
    # The email and the CRM acted before the WhatsApp message just before them was recorded: its intent was in
    # Redis, so a crash then makes the retry ask WhatsApp, not send again
    assert sends.held_when_called == {
        "mailchimp": set(), "whatsapp_lead": {"mailchimp"}, "confirmation_email": {"mailchimp"},
        "whatsapp_advisor": {"mailchimp", "whatsapp_lead", "confirmation_email"},
        "crm": {"mailchimp", "whatsapp_lead", "confirmation_email"}}
    assert sends.intents_when_called["confirmation_email"] == {"whatsapp_lead"}
    assert sends.intents_when_called["crm"] == {"whatsapp_advisor"}
    # So every provider call found every earlier step held or intended
    order = ["mailchimp", "whatsapp_lead", "confirmation_email", "whatsapp_advisor", "crm"]
    for index, step in enumerate(order):
        assert set(order[:index]) <= sends.held_when_called[step] | sends.intents_when_called[step]
    # The last records went when the block ended; no intent is left
    assert set(ledger.held()) == {"mailchimp", "whatsapp_lead", "confirmation_email", "whatsapp_advisor", "crm"}
    assert not redis_client.hgetall(ledger._intent_key())


def test_a_record_no_intent_covers_goes_before_the_next_provider_call(db, redis_client):
    ledger = Ledger("lead.created:uncovered")
    sends = Sends(redis_client, ledger)
    ledger.done("mailchimp")
    with ledger.batched():
        ledger.run("confirmation_email", sends.plain("confirmation_email"))
        ledger.run("crm", sends.plain("crm"))
    assert sends.held_when_called["crm"] == {"confirmation_email"}


def test_nested_blocks_send_when_the_outer_one_ends(db, redis_client):
    ledger = Ledger("lead.created:nested")
    ledger.done("mailchimp")
    before = effects._held_writes.round_trips
    with ledger.batched():
        with ledger.batched():
            ledger.run("mailchimp", lambda: "id-1")
        assert effects._held_writes.round_trips == before  # still waiting for this thread's next write
        ledger.run_in_redis("live_stats", lambda pipe: "2026-12-01:1")
    assert effects._held_writes.round_trips - before == 1
    assert set(ledger.held()) == {"mailchimp", "live_stats"}


def test_out_of_a_batch_each_record_is_its_own_round_trip(db, redis_client):
    ledger = Ledger("lead.created:unbatched")
    ledger.done("mailchimp")
    before = effects._held_writes.round_trips
    run_lead_steps(ledger, Sends(redis_client, ledger))
    assert effects._held_writes.round_trips - before == 7


def test_a_record_left_in_a_failed_block_is_still_sent(db, redis_client):
    ledger = Ledger("lead.created:batch-raises")
    try:
        with ledger.batched():
            ledger.run("mailchimp", lambda: "id-1")
            raise RuntimeError("the job's code failed after the step")
    except RuntimeError:
        pass
    assert set(ledger.held()) == {"mailchimp"}


def test_a_redis_step_and_its_record_are_one_round_trip_and_never_repeat(db, redis_client):
    ledger = Ledger("lead.created:counter")
    ledger.done("live_stats")
    name = "cep-test-counter"

    def count(pipe) -> str:
        pipe.hincrby(name, "campus-1", 1)
        return "2026-12-01:1"

    before = effects._held_writes.round_trips
    first = ledger.run_in_redis("live_stats", count)
    assert effects._held_writes.round_trips - before == 1
    assert (first.provider_id, first.replayed) == ("2026-12-01:1", False)
    # A retry of the job (a new ledger on the same key) finds it done and does not count again
    again = Ledger("lead.created:counter").run_in_redis("live_stats", count)
    assert again.replayed and again.provider_id == "2026-12-01:1"
    assert redis_client.hget(name, "campus-1") == b"1"
    redis_client.delete(name)


def test_the_idempotency_claim_reads_what_the_ledger_holds_and_the_ledger_asks_no_more(db, redis_client):
    job_key = "lead.created:prefetch"
    Ledger(job_key).run("mailchimp", lambda: "id-1")  # an earlier attempt's step, still held in Redis
    blocking, (held, intents) = idempotency.acquire_run_reading(job_key, "msg-1", 60,
                                                                effects.prefetch_keys(job_key))
    assert blocking is None and set(held) == {b"mailchimp"} and intents == {}
    effects.prefetched(job_key, held, intents)
    # Written after the claim's read (nothing real can: the claim keeps other runs out), so only a second read sees it
    redis_client.hset(effects.prefetch_keys(job_key)[0], "crm", '{"provider_id": "c-1", "result": {}}')
    ledger = Ledger(job_key)
    assert ledger.done("mailchimp").provider_id == "id-1"
    assert ledger.done("crm") is None  # what the claim read, not a second read
    # Read once: the next job on this thread (another ledger on the key) reads Redis itself
    assert Ledger(job_key).done("crm").provider_id == "c-1"


def test_a_claim_that_is_blocked_still_answers_and_a_forgotten_prefetch_is_not_used(db, redis_client):
    job_key = "lead.created:prefetch-blocked"
    assert idempotency.acquire_run_reading(job_key, "msg-1", 60, effects.prefetch_keys(job_key))[0] is None
    blocking, (held, _) = idempotency.acquire_run_reading(job_key, "msg-2", 60, effects.prefetch_keys(job_key))
    assert blocking["status"] == "pending" and blocking["message_id"] == "msg-1"
    effects.prefetched(job_key, {}, {})
    effects.forget_prefetched()  # the job ended without its ledger asking
    redis_client.hset(effects.prefetch_keys(job_key)[0], "mailchimp", '{"provider_id": "id-2", "result": {}}')
    assert Ledger(job_key).done("mailchimp").provider_id == "id-2"  # read from Redis, not the forgotten (empty) one
