"""The backlog gauge and the writers that read it: while fetched messages wait for a worker thread, each background
writer waits longer between batches (they merge, and wake the process less); a failing gauge never stops one."""

from __future__ import annotations

import pytest

from cep_automation import backlog
from cep_automation.records import audit, state_writer

WRITERS = [
    pytest.param(state_writer.StateWriter, state_writer.INTERVAL_S, state_writer.BUSY_INTERVAL_S, id="job state"),
    pytest.param(audit.AuditWriter, audit.FLUSH_EVERY_S, audit.BUSY_FLUSH_EVERY_S, id="audit rows"),
]


@pytest.mark.parametrize(("make", "quiet", "busy"), WRITERS)
def test_a_backed_up_process_writes_less_often(make, quiet, busy):
    waiting = [0]
    writer = make(backlog=lambda: waiting[0])
    assert writer.interval() == quiet
    waiting[0] = 2
    assert writer.interval() == busy > quiet

    def broken() -> int:
        raise RuntimeError("gauge failed")

    assert make(backlog=broken).interval() == quiet  # a gauge cannot stop the writer


def test_the_process_writers_read_the_workers_backlog():
    assert state_writer.writer.backlog is backlog.waiting
    assert audit.AuditWriter().backlog is backlog.waiting
