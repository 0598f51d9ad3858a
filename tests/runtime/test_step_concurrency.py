"""A job's independent steps run side by side when calls to providers take a while, and one after the other when
they answer at once (the hand-offs would cost more than they save)."""

from __future__ import annotations

import threading
import time

from cep_automation.records import call_times
from cep_automation.records.effects import Ledger
from cep_automation.runtime.job import JobHandle
from cep_automation.runtime.steps import StepRunner


def run_three(monkeypatch, typical_s: float) -> tuple[set[str], list[int]]:
    """Three 50 ms calls through ``concurrently`` with this typical call time; (threads they ran in, order)."""
    monkeypatch.setattr(call_times, "_typical_s", typical_s)
    threads, order, lock = set(), [], threading.Lock()

    def call(n: int):
        def run() -> None:
            time.sleep(0.05)
            with lock:
                threads.add(threading.current_thread().name)
                order.append(n)
        return run

    StepRunner(Ledger("test:concurrency"), JobHandle(None)).concurrently([call(n) for n in range(3)])
    return threads, order


def test_slow_providers_steps_run_side_by_side(monkeypatch):
    threads, order = run_three(monkeypatch, typical_s=0.1)
    assert len(threads) == 3 and sorted(order) == [0, 1, 2]  # two step threads, and the job's own


def test_instant_providers_steps_run_in_order_in_the_jobs_thread(monkeypatch):
    threads, order = run_three(monkeypatch, typical_s=0.001)
    assert threads == {threading.current_thread().name} and order == [0, 1, 2]


def test_the_typical_call_time_follows_the_calls(monkeypatch):
    monkeypatch.setattr(call_times, "_typical_s", 0.1)
    for _ in range(100):
        call_times.note(0.001)
    assert call_times.typical_s() < 0.005
    for _ in range(100):
        call_times.note(0.1)
    assert call_times.typical_s() > 0.05
