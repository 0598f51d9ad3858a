"""The process's limit on step calls in step threads follows its CPU: cut while busy, restored when not."""

from __future__ import annotations

import threading

from cep_automation.records.effects import Ledger
from cep_automation.runtime.fan_out import FanOut
from cep_automation.runtime.job import JobHandle
from cep_automation.runtime.steps import StepRunner


class Clocks:
    """Wall and CPU time the test moves by hand (by more than a window: float sums of 0.1 fall short of it)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def spend(self, wall_s: float, cpu_s: float) -> None:
        self.wall += wall_s
        self.cpu += cpu_s


def fan_out(clocks: Clocks, most: int = 32, waiting: list[int] | None = None) -> FanOut:
    """A limit on the test's clocks; ``waiting[0]`` is how many fetched messages wait for a thread (1 unless given)."""
    backlog = waiting if waiting is not None else [1]
    return FanOut(most, backlog=lambda: backlog[0], window_s=0.1, cpu=lambda: clocks.cpu, clock=lambda: clocks.wall)


def test_a_busy_process_hands_off_less_and_less_then_nothing():
    clocks = Clocks()
    limit = fan_out(clocks)
    held = [limit.grant(4) for _ in range(5)]  # five jobs at once, the first alone
    assert held == [4, 4, 4, 4, 4]  # 20 of 32 in step threads
    seen = []
    for _ in range(6):
        clocks.spend(0.2, 0.19)  # 95 % of a core
        limit.grant(4)
        seen.append(limit.limit)
        limit.release(0)
    assert seen == [10, 5, 2, 1, 0, 0]  # halved from what was in use, not from the unused 32
    assert limit.grant(4) == 0  # other jobs are fanning out: this one runs its calls itself


def test_a_busy_cpu_without_a_backlog_keeps_the_limit():
    """A burst of CPU while no message waits for a thread: the next lead's calls still go side by side."""
    clocks, waiting = Clocks(), [0]
    limit = fan_out(clocks, waiting=waiting)
    held = [limit.grant(4) for _ in range(3)]
    clocks.spend(0.2, 0.2)
    assert limit.grant(4) == 4 and limit.limit == 32
    waiting[0] = 3  # now work backs up behind the busy threads
    clocks.spend(0.2, 0.2)
    limit.grant(4)
    assert limit.limit == 8  # half of the 16 in use
    for granted in held:
        limit.release(granted)


def test_a_job_fanning_out_alone_gets_every_thread_even_when_the_cpu_is_busy():
    clocks = Clocks()
    limit = fan_out(clocks)
    limit.limit = 0
    clocks.spend(0.2, 0.2)
    assert limit.grant(5) == 5  # e.g. a PDF parse keeps the CPU busy; this lead's calls still go at once
    assert limit.grant(5) == 0
    limit.release(0)
    limit.release(5)
    assert limit.grant(3) == 3


def test_spare_cpu_doubles_the_limit_and_a_quiet_spell_restores_it():
    clocks = Clocks()
    limit = fan_out(clocks)
    limit.limit = 0
    grown = []
    for _ in range(3):
        clocks.spend(0.2, 0.14)  # 70 %: not busy, not quiet
        limit.release(limit.grant(1))
        grown.append(limit.limit)
    assert grown == [1, 2, 4]
    clocks.spend(0.2, 0.02)
    limit.release(limit.grant(1))
    assert limit.limit == 32


def test_nothing_changes_within_a_window():
    clocks = Clocks()
    limit = fan_out(clocks)
    clocks.spend(0.05, 0.05)
    limit.release(limit.grant(2))
    assert limit.limit == 32


def test_calls_over_the_limit_run_in_the_jobs_own_thread_and_all_run():
    """A job's calls beyond what the process grants run one after another in the job's thread; none is lost."""
    import cep_automation.runtime.steps as steps

    _, shared = steps._pool()
    own, done, lock = threading.current_thread().name, [], threading.Lock()
    crowd = shared.grant(1)  # another job is fanning out

    def call(n: int):
        def run() -> None:
            with lock:
                done.append((n, threading.current_thread().name))
        return run

    saved = shared.limit
    shared.limit = 0
    try:
        StepRunner(Ledger("test:fan-out"), JobHandle(None)).concurrently([call(n) for n in range(4)])
    finally:
        shared.limit = saved
        shared.release(crowd)
    assert sorted(n for n, _ in done) == [0, 1, 2, 3]
    assert {name for _, name in done} == {own}
