"""The queue policy table is the single source of actor options."""

from __future__ import annotations

from cep_automation.queues import POLICIES, POOLS, actor_options, policy


def test_policies_match_the_design_card():
    table = {p.actor: (p.queue, p.attempts, p.backoff_ms, p.time_limit_s, p.cron) for p in POLICIES}
    assert table == {
        "lead.created": ("leads", 3, 2000, 60, None),
        "campaign.sync": ("campaigns", 3, 2000, 600, "0 */6 * * *"),
        "stats.rollup": ("stats", 3, 2000, 600, "0 2 * * *"),
        "digest.daily": ("stats", 3, 2000, 600, "0 6,7 * * *"),
        "backup.daily": ("backup", 2, 2000, 3600, "0 3 * * *"),
        "llm.ingest": ("llm", 3, 2000, 120, None),
        "meta.leadgen": ("leads", 3, 2000, 60, None),
        "gdpr.erase": ("leads", 5, 2000, 600, None),
        "consent.sync": ("leads", 5, 2000, 60, None),
        "sequence.step": ("leads", 5, 2000, 60, None),
        "data.retention": ("stats", 3, 2000, 1800, "30 4 * * *"),
        "alerts.check": ("stats", 1, 2000, 60, "* * * * *"),
        "history.snapshot": ("stats", 1, 2000, 60, "* * * * *"),
        "schedules.release": ("leads", 3, 2000, 60, "* * * * *"),
        "dead_letters.auto_retry": ("stats", 1, 2000, 300, "*/5 * * * *"),
    }
    assert policy("lead.created").priority < policy("campaign.sync").priority < policy("stats.rollup").priority


def test_actor_options_give_exponential_2_4_8_for_three_attempts():
    options = actor_options("lead.created")
    assert options["max_retries"] == 2 and options["min_backoff"] == 2000 and options["max_backoff"] == 4000
    assert options["time_limit"] == 60_000 and options["queue_name"] == "leads"


def test_every_queue_has_exactly_one_pool():
    consumed = [q for pool in POOLS.values() for q in pool.queues]
    assert sorted(consumed) == sorted({p.queue for p in POLICIES})
    assert {name: pool.threads for name, pool in POOLS.items()} == {"automation": 5, "llm": 2, "backup": 1}


def test_declared_actor_takes_its_options_from_the_table(stub_broker):
    actor = stub_broker.get_actor("stats.rollup")
    assert actor.queue_name == "stats" and actor.options["max_retries"] == 2
    assert str(actor.options["periodic"]) == "0 2 * * *"
