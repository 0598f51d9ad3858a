"""data.retention: records back-dated past each limit go, those inside it stay; a second run purges nothing."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from cep_automation.actors.gdpr import data_retention
from cep_automation.db.redis_client import key
from cep_automation.queues import policy

PAST, INSIDE = 400, 300  # days: past the 365-day limits, inside them


def seed(db, redis_client):
    for days in (PAST, INSIDE):
        db.execute("INSERT INTO audit_log (action, status, created_at) VALUES ('x', 'completed', now() - %s * interval"
                   " '1 day')", (days,))
        db.execute("INSERT INTO effects (job_key, step, created_at) VALUES (%s, 's', now() - %s * interval '1 day')",
                   (f"job-{days}", days))
        db.execute("INSERT INTO uploads (filename, file_path, result, created_at) VALUES ('a.pdf', '/a', %s,"
                   " now() - %s * interval '1 day')", (Jsonb({"course": {"title": "x"}}), days))
    for days, status in ((100, "discarded"), (80, "retried"), (100, "dead")):
        db.execute("INSERT INTO dead_letters (queue, actor, message_id, payload, status, updated_at) VALUES"
                   " ('leads', 'lead.created', %s, '{}', %s, now() - %s * interval '1 day')",
                   (f"m-{days}-{status}", status, days))
    for days in (800, 700):
        db.execute("INSERT INTO leads (name, email, phone, created_at) VALUES ('Old Lead', 'old@example.com',"
                   " '+34600000000', now() - %s * interval '1 day')", (days,))
    redis_client.rpush(key("job", "m-forever", "log"), "line")  # no expiry: older code, or a manual write
    redis_client.rpush(key("job", "m-month", "log"), "line")
    redis_client.expire(key("job", "m-month", "log"), 30 * 86_400)
    redis_client.rpush(key("job", "m-day", "log"), "line")
    redis_client.expire(key("job", "m-day", "log"), 86_400)


def test_retention_purges_past_each_limit_and_keeps_what_is_inside(db, redis_client, settings_for, monkeypatch):
    monkeypatch.setenv("CEP_RETENTION_BATCH", "1")  # every purge takes several batches
    from cep_automation.settings import get_settings

    get_settings.cache_clear()
    try:
        seed(db, redis_client)
        report = data_retention()["purged"]
    finally:
        get_settings.cache_clear()
    assert report == {"audit_log": 1, "dead_letters": 1, "effects": 1, "leads": 1, "uploads": 1, "job_logs": 2}
    assert [r["n"] for r in db.execute("SELECT count(*) AS n FROM audit_log UNION ALL SELECT count(*) FROM effects")]\
        == [1, 1]
    assert {r["message_id"] for r in db.execute("SELECT message_id FROM dead_letters")} == {"m-80-retried",
                                                                                           "m-100-dead"}
    leads = db.execute("SELECT name, email, phone, erased_at IS NOT NULL AS erased FROM leads ORDER BY created_at")
    assert [tuple(r.values()) for r in leads] == [("[erased]", None, None, True),
                                                  ("Old Lead", "old@example.com", "+34600000000", False)]
    assert [r["kept"] for r in db.execute("SELECT result IS NOT NULL AS kept FROM uploads ORDER BY created_at")] \
        == [False, True]
    assert 0 < redis_client.ttl(key("job", "m-forever", "log")) <= 7 * 86_400
    assert 0 < redis_client.ttl(key("job", "m-month", "log")) <= 7 * 86_400
    assert redis_client.ttl(key("job", "m-day", "log")) <= 86_400
    # A second run finds nothing left
    assert set(data_retention()["purged"].values()) == {0}


def test_retention_is_scheduled_daily():
    assert policy("data.retention").cron == "30 4 * * *"
