"""alerts.check: each built-in rule fires once, then resolves, at a fake Slack webhook.

Each condition is made for real — messages in the real Redis broker, real worker processes that drain a
queue, dead-letter jobs or stop — and the check (the function ``alerts.check`` runs) reads it from Redis and
PostgreSQL. The last test runs ``alerts.check`` itself in a worker process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cep_automation.ops.thresholds import THRESHOLDS
from cep_automation.records import broker_state
from cep_automation.testing import wait_for
from cep_automation.testing.fake_slack import FakeSlack

SEND = """
import json, sys
from cep_automation.actors import broker
from cep_automation.runtime.enqueue import enqueue
for actor, payload in json.loads(sys.argv[1]):
    print(enqueue(actor, payload).message_id)
"""


def only(*alerts: str, extra: str = "") -> str:
    """``CEP_ALERT_THRESHOLDS`` keeping only ``alerts``, each firing without waiting (``for_s=0``)."""
    parts = [f"{name}=off" for name in sorted({t.alert for t in THRESHOLDS} - set(alerts))]
    return ",".join(parts + [f"{name}.for_s=0" for name in alerts] + ([extra] if extra else []))


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def alerting(monkeypatch, slack, db, redis_client):
    """Configure this process's alerting (webhook to the fake, thresholds); returns ``check(now=None)``."""
    from cep_automation.plugins.alerts import WebhookAlerts
    from cep_automation.runtime import alert_rules
    from cep_automation.settings import get_settings

    def configure(thresholds: str, **env: str):
        for name, value in {"CEP_ALERT_WEBHOOK_URL": slack.hook_url(), "CEP_ALERT_THRESHOLDS": thresholds,
                            **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return lambda now=None: alert_rules.check([WebhookAlerts(get_settings())], now=now)

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def send_real(process_env):
    """Enqueue (actor, payload) pairs on the real Redis broker, from another process."""
    def send(jobs, env=None):
        done = subprocess.run([sys.executable, "-c", SEND, json.dumps(jobs)], env=env or process_env(),
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.split()

    return send


def texts(slack, word):
    return [m["text"] for m in slack.messages if word in m["text"]]


def waiting(redis_client, queue):
    return redis_client.llen(broker_state.broker_key(queue))


def test_a_deep_queue_fires_once_and_resolves_when_drained(alerting, slack, send_real, start_worker, redis_client):
    check = alerting(only("QueueDepthHigh", extra="QueueDepthHigh:stats.limit=3"))
    # Given five jobs waiting in stats with no worker
    send_real([["stats.rollup", {"date": f"2026-11-0{day}"}] for day in range(1, 6)])
    # When the check runs twice
    assert check().fired == ["QueueDepthHigh:stats"]
    assert check().fired == []
    # Then one alert; and once a worker has drained the queue, one "resolved"
    assert texts(slack, "QueueDepthHigh") == ["[MEDIUM] QueueDepthHigh: more than 3 messages waiting in queue stats\n"
                                              "value 5, limit 3; holding since " + texts(slack, "since")[0][-23:]]
    start_worker("stats")
    wait_for(lambda: waiting(redis_client, "stats") == 0, what="stats drained")
    assert check().resolved == ["QueueDepthHigh:stats"]
    assert check().resolved == []
    assert [t.split("\n")[0] for t in texts(slack, "QueueDepthHigh")] == [
        "[MEDIUM] QueueDepthHigh: more than 3 messages waiting in queue stats", "[LOW] Resolved QueueDepthHigh:stats"]


def test_an_old_waiting_job_fires_and_resolves_when_it_is_taken(alerting, slack, send_real, start_worker, redis_client):
    check = alerting(only("JobWaitHigh"))  # the default limit: 120 s in leads
    send_real([["lead.created", {"lead_id": str(uuid.uuid4())}]])
    assert check().fired == []  # just enqueued
    later = time.time() + 180
    assert check(now=later).fired == ["JobWaitHigh:leads"]
    start_worker("leads")  # the lead does not exist: the job is dead-lettered, and leaves the queue
    wait_for(lambda: waiting(redis_client, "leads") == 0, what="leads drained")
    assert check(now=later).resolved == ["JobWaitHigh:leads"]
    assert [t.split("\n")[0] for t in texts(slack, "JobWaitHigh")] == [
        "[MEDIUM] JobWaitHigh: 95th percentile wait from enqueue to first start above 120 s over 5m in queue leads",
        "[LOW] Resolved JobWaitHigh:leads"]


def test_a_burst_of_failures_fires_error_rate_and_dead_letters(alerting, slack, send_real, start_worker, db):
    check = alerting(only("ErrorRateHigh", "DeadLettersNew"))
    # Given three jobs that fail for good on a real worker
    send_real([["lead.created", {"lead_id": str(uuid.uuid4())}] for _ in range(3)])
    start_worker("leads")
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM audit_log WHERE status = 'dead'").fetchone()["n"] == 3,
             what="three dead jobs audited")
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 3, what="dead letters")
    # Then each rule fires once
    assert sorted(check().fired) == ["DeadLettersNew:leads", "ErrorRateHigh:leads"]
    assert check().fired == []
    assert len(texts(slack, "ErrorRateHigh")) == 1 and "3 of 3 attempts failed" in texts(slack, "ErrorRateHigh")[0]
    assert texts(slack, "DeadLettersNew")[0].startswith("[MEDIUM] DeadLettersNew: more than 0 messages dead-lettered")
    # And both resolve once the failures are out of their windows (an hour later)
    assert sorted(check(now=time.time() + 3700).resolved) == ["DeadLettersNew:leads", "ErrorRateHigh:leads"]
    assert len(texts(slack, "Resolved")) == 2


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def test_a_stopped_worker_fires_pool_down_and_resolves_when_it_resumes(alerting, slack, start_worker, redis_client):
    check = alerting(only("PoolDown"), CEP_HEARTBEAT_TIMEOUT_MS="15000")
    proc = start_worker("campaigns")
    (worker,) = wait_for(lambda: broker_state.worker_notes(), what="the worker's first note")
    assert check().fired == []  # seen alive
    stopped = descendants(proc.pid)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: time.time() * 1000 - broker_state.worker_notes()[worker] > 15_000, what="notes stop")
        assert check().fired == ["PoolDown"]
        assert check().fired == []
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    resumed = time.time() * 1000
    wait_for(lambda: broker_state.worker_notes()[worker] > resumed, what="notes again")
    assert check().resolved == ["PoolDown"]
    assert [t.split("\n")[0] for t in texts(slack, "PoolDown")] == [
        "[CRITICAL] PoolDown: a pool's /metrics did not answer Prometheus", "[LOW] Resolved PoolDown"]
    assert worker in texts(slack, "PoolDown")[0]


def test_alerts_check_in_a_worker_alerts_a_missing_backup_then_resolves(slack, send_real, process_env, db,
                                                                       redis_client, tmp_path):
    from cep_automation.actors.backup import record

    # Given a worker whose alerting goes to the fake webhook, and no backup ever
    env = process_env(CEP_ALERT_WEBHOOK_URL=slack.hook_url(), CEP_ALERT_THRESHOLDS=only("BackupMissing"))
    worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "cep_automation.actors", "--processes", "1",
                               "--threads", "2", "--queues", "stats"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        # When alerts.check runs twice: one alert
        for _ in range(2):
            (message_id,) = send_real([["alerts.check", {}]], env)
            wait_for(lambda message_id=message_id: _ended(message_id), what="alerts.check")
        assert [t.split("\n")[0] for t in texts(slack, "BackupMissing")] == [
            "[CRITICAL] BackupMissing: no backup.daily completed over 26h"]
        # And after a backup, one "resolved"
        record("database", "cep_test.dump", 10, "0" * 64, True, "test")
        (message_id,) = send_real([["alerts.check", {}]], env)
        wait_for(lambda: _ended(message_id), what="alerts.check")
        assert texts(slack, "Resolved") == ["[LOW] Resolved BackupMissing\nnow 0 (last one 0.0 h ago); it fired at "
                                            + texts(slack, "Resolved")[0].split("it fired at ")[1]]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _ended(message_id):
    from cep_automation.records.job_state import get_job

    info = get_job(message_id)
    return info is not None and info.state in ("completed", "failed", "dead")


def test_alerts_check_runs_every_minute(stub_broker):
    import pendulum

    from cep_automation.actors import alerts_check

    assert alerts_check.queue_name == "stats"
    assert alerts_check.options["periodic"].validate(pendulum.datetime(2026, 11, 25, 2, 17, tz="UTC"))
