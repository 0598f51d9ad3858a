"""``cep-automation flow`` shows what waits in flow control, read from the real Redis."""

from __future__ import annotations

import json

from click.testing import CliRunner
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from cep_automation import options as opt
from cep_automation.cli import cli
from cep_automation.db.redis_client import get_redis
from cep_automation.flow import concurrency, fairness, ordering, throttle


def test_flow_shows_limits_lines_fair_queues_and_held_jobs(cep_services, redis_client, db):
    import datetime as dt

    from cep_automation.records import scheduled_jobs

    broker = RedisBroker(url=cep_services.redis_url, namespace=cep_services.namespace, middleware=[])
    try:
        throttle.try_rate("whatsapp", "123456", rate=1, period_s=60)
        concurrency.try_take("mailchimp", "acct", "holder-1", most=10, lease_s=30)
        get_redis().rpush(ordering.line_key("lead:7"), "m-1", "m-2")
        ordering.take_turn("lead:7", Message(queue_name="leads", actor_name="lead.created", args=(),
                                             kwargs={}, options={}, message_id="m-2"), "leads")
        for n in range(3):
            fairness.enqueue(broker, Message(queue_name="uploads", actor_name="x", args=(), kwargs={"n": n},
                                             options={opt.FAIRNESS_KEY: "campus:1"}), "campus:1")
        due = dt.datetime(2031, 1, 6, 8, tzinfo=dt.UTC)
        scheduled_jobs.hold(db, message_id="held-1", actor="campaign.sync", queue="campaigns",
                            payload={"args": [], "kwargs": {}}, options={}, run_at=due, debounce_key="sync:7")
        scheduled_jobs.hold(db, message_id="held-2", actor="campaign.sync", queue="campaigns",
                            payload={"args": [], "kwargs": {}}, options={}, run_at=due + dt.timedelta(days=1))
        result = CliRunner().invoke(cli, ["flow", "--json"])
    finally:
        broker.close()
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert {"limit": "mailchimp", "bucket": "acct", "running": 1} in found["running"]
    [rate] = [r for r in found["rates"] if r["limit"] == "whatsapp"]
    assert rate["bucket"] == "123456" and 0 < rate["booked_ahead_s"] <= 60
    assert {"key": "lead:7", "in_line": 2, "parked": 1} in found["ordering"]
    assert {"queue": "uploads", "waiting": 3, "keys": 1, "next_keys": ["campus:1"]} in found["fair"]
    assert {"queue": "campaigns", "held": 2, "debounced": 1, "next_run_at": due.isoformat()} in found["held"]
    text = CliRunner().invoke(cli, ["flow"]).output
    assert "lead:7" in text and "campus:1" in text and "2031-01-06T08:00:00+00:00" in text
