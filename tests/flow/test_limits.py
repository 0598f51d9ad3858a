"""Flow-control limits on the real Redis: GCRA rates, leased concurrency and hold(), across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from cep_automation.errors import Postponed
from cep_automation.flow import Limit, concurrency, hold, throttle
from cep_automation.records import metrics


def bucket() -> str:
    return uuid.uuid4().hex[:8]


def test_a_rate_admits_its_burst_at_once_then_spaces_admissions(redis_client):
    b = bucket()
    verdicts = [throttle.try_rate("t", b, rate=10, period_s=60, burst=3) for _ in range(4)]
    assert [v.admitted for v in verdicts] == [True, True, True, False]
    assert 0 < verdicts[3].wait_s <= 6  # one unit every 6 s: the next one is at most 6 s away
    # Each admission moved the theoretical arrival time on by exactly one interval (6 s)
    tats = [v.tat_ms for v in verdicts[:3]]
    assert [round(later - earlier) for earlier, later in zip(tats, tats[1:], strict=False)] == [6000, 6000]


def test_a_cost_counts_as_that_many_units_and_can_never_exceed_the_burst(redis_client):
    b = bucket()
    assert throttle.try_rate("tokens", b, rate=100, period_s=60, burst=100, cost=60).admitted
    assert not throttle.try_rate("tokens", b, rate=100, period_s=60, burst=100, cost=60).admitted
    assert throttle.try_rate("tokens", b, rate=100, period_s=60, burst=100, cost=40).admitted
    with pytest.raises(ValueError, match="a cost of 101 can never pass a burst of 100"):
        throttle.try_rate("tokens", b, rate=100, period_s=60, burst=100, cost=101)


CHILD = """
import json, sys
from cep_automation.flow import throttle
granted = []
for _ in range(40):
    verdict = throttle.try_rate("shared", sys.argv[1], rate=20, period_s=1, burst=1)
    if verdict.admitted:
        granted.append(verdict.tat_ms)
print(json.dumps(granted))
"""


def test_two_processes_share_one_rate(redis_client, process_env):
    # Given two processes racing for the same 20/s limit (one admission every 50 ms)
    b = bucket()
    children = [subprocess.Popen([sys.executable, "-c", CHILD, b], env=process_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    # Then every admission, whichever process got it, has its own 50 ms slot: the state is shared and atomic
    tats = sorted(t for out, _ in outputs for t in json.loads(out))
    assert tats and all(later - earlier >= 50 - 0.01 for earlier, later in zip(tats, tats[1:], strict=False))


def test_concurrency_admits_at_most_n_holders_and_a_release_frees_one(redis_client):
    b = bucket()
    assert concurrency.try_take("c", b, "h1", most=2, lease_s=30)[0]
    assert concurrency.try_take("c", b, "h2", most=2, lease_s=30)[0]
    taken, wait = concurrency.try_take("c", b, "h3", most=2, lease_s=30)
    assert not taken and 0 < wait <= 30
    assert concurrency.try_take("c", b, "h1", most=2, lease_s=30)[0]  # a holder renews its own lease
    assert concurrency.running("c", b) == 2
    concurrency.release("c", b, "h1")
    assert concurrency.try_take("c", b, "h3", most=2, lease_s=30)[0]


def test_a_dead_holders_slot_frees_when_its_lease_ends(redis_client):
    b = bucket()
    assert concurrency.try_take("c", b, "dies", most=1, lease_s=0.2)[0]
    assert not concurrency.try_take("c", b, "next", most=1, lease_s=30)[0]
    time.sleep(0.3)  # nobody releases: the lease ends
    assert concurrency.try_take("c", b, "next", most=1, lease_s=30)[0]


def test_hold_postpones_the_job_when_no_slot_frees_in_time(redis_client):
    limit = Limit("mailchimp", concurrency=1, lease_s=30, wait_s=0)
    b = bucket()
    with hold(limit, b):
        with pytest.raises(Postponed, match=rf"mailchimp {b}: over its limit \(1 at once\)") as error:
            with hold(limit, b):
                pass
        assert 0 < error.value.retry_after <= 30
    with hold(limit, b):  # the first holder let go at the end of its block
        pass


def test_hold_lets_go_of_its_slot_when_the_block_fails(redis_client):
    limit, b = Limit("crm", concurrency=1, wait_s=0), bucket()
    with pytest.raises(RuntimeError), hold(limit, b):
        raise RuntimeError("the call failed")
    assert concurrency.running("crm", b) == 0


def test_hold_waits_for_a_slot_within_its_wait(redis_client):
    limit, b = Limit("paced", rate=20, period_s=1, burst=1, wait_s=5), bucket()
    waits = []
    for _ in range(3):
        with hold(limit, b) as waited:
            waits.append(waited)
    assert waits[0] < waits[1] + waits[2]  # the first went at once; the others waited for their slot
    waited = [line for line in metrics.render()[0].decode().splitlines()
              if line.startswith('flow_limit_wait_seconds_count{how="held",limit="paced"}')]
    assert waited and float(waited[0].rsplit(" ", 1)[1]) >= 1


def test_a_rate_over_its_limit_gives_back_the_concurrency_slot_it_took(redis_client):
    limit, b = Limit("both", rate=1, period_s=60, concurrency=5, wait_s=0), bucket()
    with hold(limit, b):
        pass
    with pytest.raises(Postponed, match=r"1 per 60 s and 5 at once"):
        with hold(limit, b):
            pass
    assert concurrency.running("both", b) == 0


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({}, "limits nothing"),
    ({"rate": 0}, "must all be positive"),
    ({"rate": 5, "burst": 0}, "must all be positive"),
    ({"concurrency": 0}, "must be positive"),
])
def test_a_limit_that_makes_no_sense_is_refused_saying_why(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        Limit("bad", **kwargs)
