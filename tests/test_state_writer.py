"""Job-state writes are batched in order, survive a Redis outage, and are read back by their own process."""

from __future__ import annotations

import pytest
import redis

from cep_automation.db.redis_client import key
from cep_automation.records import job_state
from cep_automation.records.state_writer import StateWriter


def test_writes_apply_in_submission_order(redis_client):
    writer = StateWriter()
    for n in range(100):
        writer.submit(lambda pipe, n=n: pipe.rpush(key("order"), n))
    writer.flush()
    assert [int(x) for x in redis_client.lrange(key("order"), 0, -1)] == list(range(100))


def test_unreachable_redis_keeps_the_operations(redis_client, monkeypatch, cep_services):
    from cep_automation.db.redis_client import reset_redis
    from cep_automation.settings import get_settings

    writer = StateWriter()
    writer.submit(lambda pipe: pipe.set(key("kept"), "1"))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    reset_redis()
    with pytest.raises(redis.ConnectionError):
        writer.flush()
    monkeypatch.setenv("REDIS_URL", cep_services.redis_url)
    get_settings.cache_clear()
    reset_redis()
    writer.flush()
    assert redis_client.get(key("kept")) == b"1"


def test_a_refused_batch_is_dropped_not_retried_for_ever(redis_client):
    writer = StateWriter()
    writer.submit(lambda pipe: pipe.execute_command("NO-SUCH-COMMAND"))
    writer.flush()
    writer.submit(lambda pipe: pipe.set(key("after"), "1"))
    writer.flush()
    assert redis_client.get(key("after")) == b"1"


def test_late_queued_record_does_not_override_a_later_state(redis_client):
    job_state.record("m-late", "completed", actor="stats.rollup", queue="stats", progress=100)
    job_state.record("m-late", "queued", only_if_new=True, actor="stats.rollup", queue="stats")
    info = job_state.get_job("m-late")
    assert info.state == "completed" and info.progress == 100
    job_state.record("m-new", "queued", only_if_new=True, actor="stats.rollup", queue="stats")
    assert job_state.get_job("m-new").state == "queued"
    assert 0 < redis_client.ttl(key("job", "m-new")) <= job_state.KEEP_FAILED_S
    assert 0 < redis_client.ttl(key("job", "m-late")) <= job_state.KEEP_COMPLETED_S


def test_successive_records_of_a_job_in_one_batch_go_as_one_write(redis_client):
    from cep_automation.records.state_writer import JobWrite, merged

    writer = StateWriter()
    first = JobWrite(key("job", "m-merge"), key("job", "m-merge", "log"), data={"state": "active", "attempt": 1},
                     ttl=60)
    progress = lambda pipe: pipe.hset(key("job", "m-merge"), mapping={"progress": 50})  # noqa: E731
    last = JobWrite(key("job", "m-merge"), key("job", "m-merge", "log"), data={"state": "completed"}, ttl=3600)
    other = JobWrite(key("job", "m-other"), key("job", "m-other", "log"), data={"state": "active"}, ttl=60)
    batch = [first, other, progress, last]
    assert [type(op).__name__ for op in merged(batch)] == ["JobWrite", "function", "JobWrite"]
    for op in batch:
        writer.submit(op)
    writer.flush()
    stored = {k.decode(): v.decode() for k, v in redis_client.hgetall(key("job", "m-merge")).items()}
    assert stored == {"state": "completed", "attempt": "1", "progress": "50"}
    assert 3000 < redis_client.ttl(key("job", "m-merge")) <= 3600
    assert redis_client.hget(key("job", "m-other"), "state") == b"active"


def test_progress_reports_fold_into_the_jobs_record_and_alone_keep_its_retention(redis_client):
    from cep_automation.records.state_writer import JobWrite, merged

    job, log = key("job", "m-progress"), key("job", "m-progress", "log")

    def progress(percent: int) -> JobWrite:
        return JobWrite(job, log, data={"progress": percent})

    # A short job's reports wait in one batch with its states: one write, the last state's retention
    batch = [JobWrite(job, log, data={"state": "active"}, ttl=7200), progress(10), progress(90),
             JobWrite(job, log, data={"state": "completed"}, ttl=3600), progress(100)]
    assert len(merged(batch)) == 1
    writer = StateWriter()
    for op in batch:
        writer.submit(op)
    writer.flush()
    assert redis_client.hmget(job, "state", "progress") == [b"completed", b"100"]
    assert 3000 < redis_client.ttl(job) <= 3600
    # A long job's report alone in its batch: the field only, the retention as it was
    redis_client.expire(job, 60)
    writer.submit(progress(40))
    writer.flush()
    assert redis_client.hget(job, "progress") == b"40" and 0 < redis_client.ttl(job) <= 60


def test_successive_log_lines_of_a_job_in_one_batch_go_in_order_as_one_append(redis_client):
    from cep_automation.records.state_writer import JobWrite, merged

    job, log = key("job", "m-lines"), key("job", "m-lines", "log")
    batch = [JobWrite(job, log, lines=[f"line {n}"], keep=3, log_ttl=60) for n in range(5)]
    assert len(merged(batch)) == 1
    writer = StateWriter()
    for op in batch:
        writer.submit(op)
    writer.flush()
    assert [x.decode() for x in redis_client.lrange(log, 0, -1)] == ["line 2", "line 3", "line 4"]
    assert 0 < redis_client.ttl(log) <= 60 and not redis_client.exists(job)  # lines alone: no record made
    # Later batches keep trimming to the last three
    writer.submit(JobWrite(job, log, lines=["line 5", "line 6"], keep=3, log_ttl=60))
    writer.flush()
    assert [x.decode() for x in redis_client.lrange(log, 0, -1)] == ["line 4", "line 5", "line 6"]


def test_a_jobs_state_lines_and_progress_in_one_batch_are_one_command_with_the_states_retention(redis_client):
    from cep_automation.records.state_writer import JobWrite, merged

    job, log = key("job", "m-whole"), key("job", "m-whole", "log")
    batch = [JobWrite(job, log, data={"state": "active"}, ttl=7 * 24 * 3600),
             JobWrite(job, log, data={"progress": 10}),
             JobWrite(job, log, lines=["mailchimp: success"], log_ttl=7 * 24 * 3600),
             JobWrite(job, log, lines=["crm:webhook: success"], log_ttl=7 * 24 * 3600),
             JobWrite(job, log, data={"state": "completed", "progress": 100}, ttl=3600)]
    ops = merged(batch)
    assert len(ops) == 1
    pipe = redis_client.pipeline(transaction=False)
    ops[0](pipe)
    assert len(pipe) == 1  # one script call, not HSET, EXPIRE, EXPIRE, RPUSH, LTRIM, EXPIRE
    writer = StateWriter()
    for op in batch:
        writer.submit(op)
    writer.flush()
    assert redis_client.hmget(job, "state", "progress") == [b"completed", b"100"]
    assert [x.decode() for x in redis_client.lrange(log, 0, -1)] == ["mailchimp: success", "crm:webhook: success"]
    # The completed job's retention holds for its record and its log, though lines came after "active"
    assert 3000 < redis_client.ttl(job) <= 3600 and 3000 < redis_client.ttl(log) <= 3600


def test_a_script_redis_forgot_is_loaded_again_and_the_batch_written(redis_client):
    # Given Redis lost its scripts (a restart) after this process had used the "queued" script
    job_state.record("m-script-1", "queued", only_if_new=True, actor="a", queue="q")
    job_state.writer.flush()
    redis_client.script_flush()
    # When the next batch uses it again
    job_state.record("m-script-2", "queued", only_if_new=True, actor="a", queue="q")
    job_state.writer.flush()
    # Then it was loaded and the write went through
    assert redis_client.hget(key("job", "m-script-2"), "state") == b"queued"


def test_group_commit_confirms_each_write_and_shares_round_trips(redis_client):
    import threading

    from cep_automation.db.redis_client import GroupCommit

    commit, start, errors = GroupCommit(), threading.Barrier(16), []

    def writer(n: int) -> None:
        start.wait()
        for m in range(20):
            try:
                if n == 0 and m == 0:  # one bad write: only its caller hears of it
                    commit.write(lambda pipe: pipe.execute_command("NO-SUCH-COMMAND"))
                else:
                    commit.write(lambda pipe, n=n, m=m: pipe.set(key("gc", str(n), str(m)), 1))
                    if redis_client.get(key("gc", str(n), str(m))) != b"1":  # written before write() returned
                        errors.append(f"{n}/{m} not written when write() returned")
            except redis.ResponseError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], redis.ResponseError), errors
    assert sum(1 for _ in redis_client.scan_iter(match=key("gc", "*"))) == 16 * 20 - 1
    assert commit.round_trips < 16 * 20  # sixteen threads writing at once: some writes went together
