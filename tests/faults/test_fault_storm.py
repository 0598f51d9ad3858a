"""A storm at the fake APIs: 30% of requests answered with that API's own 5xx or 429 (``Retry-After: 1``).

No job is dropped silently: each lead either completed, with every step done once, or is in the dead letters
with the steps that kept failing; and the audit log tells each attempt's story.
"""

from __future__ import annotations

import pytest
from faultkit import Storm
from loadkit import (
    STEPS,
    effects_at_fakes,
    read_ledger,
    stories,
    unsettled,
    wait_settled,
)

from cep_automation.testing import wait_for

pytestmark = pytest.mark.slow
ATTEMPTS = 3  # lead.created's queue policy


@pytest.mark.parametrize("count, rate", [(60, 0.3), pytest.param(300, 0.3, marks=pytest.mark.heavy)])
def test_storm_of_5xx_and_429_drops_nothing_silently(count, rate, db, sandbox, workers, leads, producer, redis_client,
                                                      cep_services):
    # Given every fake API answers 30% of its requests with a 5xx or a 429 and acts on none of those
    storm = Storm(sandbox, rate=rate, seed=7)
    load = leads(db, count)
    # When a load of leads runs on a worker
    workers(threads=4)
    messages = producer().send_leads(load)
    ledger = wait_settled(cep_services.database_url, load, messages, redis_client, cep_services.namespace)
    # The dead letter is written before the message is rejected; its audit row follows in the next batch.
    ledger = wait_for(lambda: (fresh := read_ledger(cep_services.database_url, load)) and all(
        fresh.audit[lead.id] and fresh.audit[lead.id][-1]["status"] == "dead"
        for lead in load if messages[lead.id] in fresh.letters) and fresh, timeout=30, what="dead leads' audit rows")

    # Then every lead completed or is in the dead letters: none vanished
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, f"{len(lost)} lead(s) lost:\n" + "\n".join(stories(ledger, lost, messages))
    assert sum(storm.faults.values()) > count  # the storm did blow, at every API
    assert {name.split()[0] for name in storm.faults} == {"FakeWhatsApp", "FakeMailchimp", "FakeMandrill",
                                                          "FakeCrmWebhook"}
    effects = effects_at_fakes(sandbox, load)
    for lead in load:
        audit = ledger.audit[lead.id]
        letter = ledger.letters.get(messages[lead.id])
        # And the audit log has one row per attempt, numbered, ending in "completed" or "dead"
        assert [row["attempt"] for row in audit] == list(range(1, len(audit) + 1)) and len(audit) <= ATTEMPTS
        assert [row["status"] for row in audit[:-1]] == ["retried"] * (len(audit) - 1)
        if letter is None:
            # And a completed lead had every step done, each provider acting exactly once
            assert audit[-1]["status"] == "completed"
            assert ledger.steps[lead.id] == set(STEPS)
            assert effects.of(lead)[:3] == (1, 1, 1) and lead.id in effects.members
        else:
            # And a dead one says which steps kept failing and why, in the dead letter and in the audit log
            failed = {step for step, outcome in audit[-1]["metadata"]["steps"].items() if outcome["status"] == "failed"}
            assert audit[-1]["status"] == "dead" and failed and len(audit) == ATTEMPTS
            assert letter["error_type"] == "TransientError" and letter["attempts"] == ATTEMPTS
            assert all(step in letter["error_message"] for step in failed)
            assert all(step in audit[-1]["metadata"]["error"] for step in failed)
            # And the steps that did succeed are in the ledger, so a retry from the dead letters repeats none
            assert ledger.steps[lead.id] == set(STEPS) - failed
        assert max(effects.of(lead)[:3]) <= 1
