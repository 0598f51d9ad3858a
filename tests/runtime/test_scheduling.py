"""run_at, delay, debounce and cancel through the one enqueue path; held jobs released by runtime/scheduling."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dramatiq
import pytest

from cep_automation import options as opt
from cep_automation.actors import stats_rollup
from cep_automation.errors import ScheduledJobNotFound, ScheduleError
from cep_automation.records import scheduled_jobs
from cep_automation.runtime import timing
from cep_automation.runtime.enqueue import cancel, enqueue
from cep_automation.runtime.scheduling import release_due

MADRID = ZoneInfo("Europe/Madrid")


def queued(broker, queue: str) -> list[dramatiq.Message]:
    return [dramatiq.Message.decode(data) for data in broker.queues[queue].queue]


def in_days(days: float) -> dt.datetime:
    return dt.datetime.now(MADRID) + dt.timedelta(days=days)


def test_a_job_due_in_days_is_held_in_postgresql_not_in_redis(db, stub_broker):
    sent = stats_rollup.send_with_options(kwargs={"granularity": "daily"}, run_at=in_days(30))
    row = scheduled_jobs.get(db, sent.message_id)
    assert row["status"] == "scheduled" and row["payload"]["kwargs"] == {"granularity": "daily"}
    assert stub_broker.queues["stats"].qsize() == 0 and stub_broker.queues["stats.DQ"].qsize() == 0


def test_enqueue_says_when_a_held_job_is_due(db, stub_broker):
    when = in_days(2)
    sent = enqueue("stats.rollup", {}, run_at=when)
    assert sent.held and sent.run_at == when and not sent.duplicate


def test_a_short_delay_goes_to_the_delay_queue(db, stub_broker):
    sent = enqueue("stats.rollup", {}, delay=dt.timedelta(seconds=30))
    assert not sent.held and stub_broker.queues["stats.DQ"].qsize() == 1
    assert scheduled_jobs.get(db, sent.message_id) is None


def test_a_time_in_the_past_runs_now(db, stub_broker):
    enqueue("stats.rollup", {}, run_at=in_days(-1))
    assert stub_broker.queues["stats"].qsize() == 1


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"run_at": dt.datetime(2026, 12, 7, 9, 0)}, "has no time zone"),
    ({"delay": -5_000}, "delay must be zero or more seconds"),
    ({"run_at": in_days(1), "delay": 1_000}, "not run_at and delay"),
    ({"debounce": 0}, "debounce must be more than 0 s"),
    ({"run_at": "2026-12-07T09:00:00+01:00"}, "must be a datetime with a time zone, got str"),
    ({"run_at": in_days(20 * 365)}, "days ahead"),
])
def test_bad_timings_are_refused_with_a_clear_error(db, stub_broker, kwargs, says):
    with pytest.raises(ScheduleError, match=says):
        enqueue("stats.rollup", {}, **kwargs)
    assert stub_broker.queues["stats"].qsize() == 0


@pytest.mark.parametrize(("text", "says"), [
    ("next monday", "not an ISO 8601 date and time"),
    ("2026-12-07T09:00:00", "has no time zone"),
])
def test_text_instants_must_be_iso8601_with_an_offset(text, says):
    with pytest.raises(ScheduleError, match=says):
        timing.parse_instant(text)
    assert timing.parse_instant("2026-12-07T08:00:00Z") == dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)


def test_a_held_job_can_be_cancelled_once(db, stub_broker):
    sent = enqueue("stats.rollup", {}, run_at=in_days(3))
    cancel(sent.message_id)
    assert scheduled_jobs.get(db, sent.message_id)["status"] == "cancelled"
    with pytest.raises(ScheduledJobNotFound, match="already cancelled"):
        cancel(sent.message_id)
    with pytest.raises(ScheduledJobNotFound, match="no scheduled job 'nope'"):
        cancel("nope")


@pytest.fixture
def hold_everything(monkeypatch):
    """Every delayed job held in PostgreSQL, however short its delay (CEP_SCHEDULE_HOLD_AFTER_S=0)."""
    from cep_automation.settings import get_settings

    monkeypatch.setenv("CEP_SCHEDULE_HOLD_AFTER_S", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_release_sends_due_jobs_under_their_id_and_leaves_the_rest(db, stub_broker, hold_everything):
    # Given a job due in 10 s (inside the release lookahead), one due tomorrow and one cancelled
    soon = enqueue("stats.rollup", {"granularity": "weekly"}, delay=10_000)
    later = enqueue("stats.rollup", {}, run_at=in_days(1))
    gone = enqueue("stats.rollup", {}, delay=5_000)
    cancel(gone.message_id)
    assert soon.held and later.held
    # When the releaser runs
    outcome = release_due()
    # Then only the due job went, to the delay queue for the rest of its wait, under the id its caller holds
    assert (outcome.released, outcome.failed) == (1, 0)
    [message] = queued(stub_broker, "stats.DQ")
    assert message.message_id == soon.message_id and message.kwargs == {"granularity": "weekly"}
    assert message.options[opt.IDEMPOTENCY_KEY] == f"scheduled:{soon.message_id}"
    assert [scheduled_jobs.get(db, s.message_id)["status"] for s in (soon, later, gone)] == [
        "released", "scheduled", "cancelled"]
    # And a second pass finds nothing more to do
    assert release_due().released == 0


def test_a_job_due_now_is_released_straight_to_its_queue(db, stub_broker, hold_everything):
    sent = enqueue("stats.rollup", {}, delay=1)
    db.execute("UPDATE scheduled_jobs SET run_at = now() - interval '1 minute'")
    release_due()
    assert [m.message_id for m in queued(stub_broker, "stats")] == [sent.message_id]


def test_debounce_gathers_a_burst_into_one_job_with_the_last_payload(db, stub_broker):
    # Given a burst of three triggers of a campaign re-sync under one key
    sent = [enqueue("campaign.sync", {"campaign_id": n}, debounce=60, debounce_key="campaign:7") for n in (1, 2, 3)]
    # Then they are one held job, with the last trigger's payload, due a quiet period after the last trigger
    assert len({s.message_id for s in sent}) == 1 and [s.duplicate for s in sent] == [False, True, True]
    row = scheduled_jobs.get(db, sent[0].message_id)
    assert row["triggers"] == 3 and row["payload"]["kwargs"] == {"campaign_id": 3}
    assert row["run_at"] >= sent[2].run_at - dt.timedelta(seconds=1)
    # And another key is another job
    other = enqueue("campaign.sync", {"campaign_id": 9}, debounce=60, debounce_key="campaign:9")
    assert other.message_id != sent[0].message_id


def test_a_debounced_job_is_not_released_before_its_quiet_period_ends(db, stub_broker):
    sent = enqueue("campaign.sync", {}, debounce=30)
    assert release_due().released == 0  # due in 30 s: inside the lookahead, but a trigger may still move it
    db.execute("UPDATE scheduled_jobs SET run_at = now() - interval '1 second'")
    assert release_due().released == 1
    assert [m.message_id for m in queued(stub_broker, "campaigns")] == [sent.message_id]
    # After its release, a new trigger starts a new job
    assert enqueue("campaign.sync", {}, debounce=30).message_id != sent.message_id


def test_a_held_job_whose_job_no_longer_exists_is_marked_failed(db, stub_broker):
    sent = enqueue("stats.rollup", {}, run_at=in_days(1))
    db.execute("UPDATE scheduled_jobs SET actor = 'gone.job', run_at = now()")
    assert release_due().failed == 1
    row = scheduled_jobs.get(db, sent.message_id)
    assert row["status"] == "failed" and "unknown job 'gone.job'" in row["error"]
