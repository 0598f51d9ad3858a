"""Two hosts on one Redis and one PostgreSQL: nothing in the design assumes a single machine.

Each "host" is a worker pool in a process group of its own, with its own temporary folder and its own
Prometheus multiprocess folder (which must never be shared: it holds per-process files that one host's
/metrics merges). Every lead is sent twice; both hosts take from the same queue, and idempotency, the effects
ledger and the provider limits, all in the shared Redis and PostgreSQL, make each lead's effects happen once.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import redis
from loadkit import effects_at_fakes, stories, unsettled, wait_settled

from cep_automation.testing.ports import free_port

pytestmark = pytest.mark.slow
THREADS = 3


def host_env(fault_env, root: Path) -> tuple[dict[str, str], int]:
    """A host's environment: its own temp and metrics folders and /metrics port, the shared Redis and PostgreSQL."""
    (root / "tmp").mkdir(parents=True)
    (root / "prometheus").mkdir()
    port = free_port()
    return fault_env(TMPDIR=str(root / "tmp"), PROMETHEUS_MULTIPROC_DIR=str(root / "prometheus"),
                     CEP_METRICS_PORT=str(port)), port


def completed(port: int) -> float:
    """``jobs_processed_total{queue="leads",status="completed"}`` on one host's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = re.search(r'^jobs_processed_total\{queue="leads",status="completed"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def pids_in(folder: Path) -> set[int]:
    return {int(m.group(1)) for p in folder.iterdir() if (m := re.search(r"_(\d+)\.db$", p.name))}


def test_two_hosts_share_the_work_and_each_lead_acts_once(tmp_path, db, sandbox, fault_env, workers, leads,
                                                          producer, cep_services):
    # Given two hosts, each a pool with its own folders, on the session's one Redis and one PostgreSQL
    (env_a, port_a), (env_b, port_b) = host_env(fault_env, tmp_path / "a"), host_env(fault_env, tmp_path / "b")
    host_a, host_b = workers(env_a, threads=THREADS), workers(env_b, threads=THREADS)
    # When every lead is sent twice (a producer that retried), both hosts taking from the same queue
    load = leads(db, 40)
    send = producer()
    messages = send.send_leads(load)
    send.send_leads(load)
    client = redis.Redis.from_url(cep_services.redis_url)
    ledger = wait_settled(cep_services.database_url, load, messages, client, cep_services.namespace)

    # Then every lead completed once, and no provider acted twice for one
    lost = unsettled(ledger, load, messages)
    assert len(lost) == 0, f"{len(lost)} lead(s) lost:\n" + "\n".join(stories(ledger, lost, messages))
    assert all(ledger.completed(lead) == 1 for lead in load)
    effects = effects_at_fakes(sandbox, load)
    assert all(effects.of(lead) == (1, 1, 1, 1, True) for lead in load)
    # And both hosts worked, each /metrics counting only its own processes: together, one completion a lead
    done_a, done_b = completed(port_a), completed(port_b)
    assert done_a > 0 and done_b > 0
    assert done_a + done_b == len(load)
    # And each metrics folder holds files of its own host's processes only
    pids_a, pids_b = pids_in(tmp_path / "a" / "prometheus"), pids_in(tmp_path / "b" / "prometheus")
    assert host_a.worker_pid() in pids_a and host_b.worker_pid() in pids_b
    assert not pids_a & pids_b
