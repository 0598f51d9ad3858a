"""A job's independent steps run side by side: the job's own thread takes one, step threads the others."""

from __future__ import annotations

import threading
import time

from cep_automation.records.effects import Ledger
from cep_automation.runtime.job import JobHandle
from cep_automation.runtime.steps import StepRunner


def test_independent_steps_run_side_by_side_and_all_run():
    threads, done, lock = set(), [], threading.Lock()
    both_running = threading.Barrier(3, timeout=10)  # all three must be in flight at once to pass it

    def call(n: int):
        def run() -> None:
            both_running.wait()
            time.sleep(0.01)
            with lock:
                threads.add(threading.current_thread().name)
                done.append(n)
        return run

    StepRunner(Ledger("test:concurrency"), JobHandle(None)).concurrently([call(n) for n in range(3)])
    assert sorted(done) == [0, 1, 2]
    assert len(threads) == 3 and threading.current_thread().name in threads
