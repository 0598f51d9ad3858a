"""``cep-automation dev`` as a real process: embedded servers, demo data, supervision and clean stops.

The command writes ``<data-dir>/dev.json`` (URLs without passwords, pids) once its banner is
printed; the tests read the embedded database URL from there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from cep_automation.testing.ports import free_port
from cep_automation.testing.processes import CLI, wait_for

pytestmark = pytest.mark.slow

SERVICE_VARIABLES = ("REDIS_URL", "DATABASE_URL", "BROKER_URL", "CEP_PG_BIN_DIR")
CHILDREN = {"worker-automation", "worker-llm", "worker-backup", "scheduler", "http"}


class Dev:
    """One ``cep-automation dev`` process; its output goes to a file so a full pipe never blocks it."""

    def __init__(self, tmp_path: Path, env: dict[str, str], args: tuple[str, ...], number: int) -> None:
        self.data_dir = tmp_path / "data"
        self.out = tmp_path / f"dev-{number}.out"
        with self.out.open("wb") as out:
            # Own session, like a shell's job: ctrl_c() signals the whole process group, as a terminal does.
            self.proc = subprocess.Popen([*CLI, "dev", "--data-dir", str(self.data_dir), *args], env=env,
                                         cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> dict[str, Any]:
        wait_for(lambda: "Press Ctrl-C to stop." in self.output() or self.proc.poll() is not None, timeout,
                 "the banner of cep-automation dev")
        assert self.proc.poll() is None, self.output()
        return json.loads((self.data_dir / "dev.json").read_text())

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Like :func:`wait_for`, but fails at once, with the output, if ``dev`` exits meanwhile."""
        def check() -> Any:
            assert self.proc.poll() is None, f"dev exited while waiting for {what}:\n{self.output()}"
            return predicate()

        return wait_for(check, timeout, what)

    def tree(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def ctrl_c(self, timeout: float = 60) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(processes: list[psutil.Process]) -> None:
    wait_for(lambda: not any(alive(p) for p in processes), 15, "every child process to exit")


@pytest.fixture
def run_dev(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def run(env: dict[str, str], *args: str) -> Dev:
        started.append(Dev(tmp_path, env, args, len(started)))
        return started[-1]

    yield run
    for dev in started:  # a failed test must not leave servers or workers behind
        if dev.proc.poll() is None:
            tree = dev.tree()
            dev.proc.terminate()
            try:
                dev.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.proc.kill()
                for process in tree:
                    process.kill()


def bare_env() -> dict[str, str]:
    """This test process's environment without any service URL, so ``dev`` must embed them."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(CEP_NAMESPACE=f"cep-dev-test-{secrets.token_hex(4)}", CEP_METRICS_PORT="0",
               CEP_HTTP_PORT=str(free_port()))
    return env


def count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def test_demo_on_embedded_servers_then_ctrl_c(run_dev, tmp_path):
    # Given no REDIS_URL / DATABASE_URL in the environment (nor a .env in the working directory)
    dev = run_dev(bare_env(), "--demo")

    # When it is ready: embedded servers, four children, demo data, and the queued rollup has run
    state = dev.wait_ready()
    output = dev.output()
    assert state["embedded"] == ["Redis", "PostgreSQL"] and set(state["processes"]) == CHILDREN
    assert f"{state['database_url']}  (embedded" in output and f"{state['redis_url']}  (embedded" in output
    assert "4 campaigns, 300 leads" in output and "queued (see `cep-automation jobs show ID`)" in output
    for job in ("stats.rollup", "campaign.sync", "llm.ingest", "backup.daily", "lead.created"):
        assert job in output
    assert "fakes of Mailchimp" in output
    http = output.split("Dashboard:", 1)[1].split("/admin/", 1)[0].strip()
    health = wait_for(lambda: _get(http + "/health"), 30, "the HTTP service")
    assert '"status"' in health
    postmaster = dev.data_dir / "postgres" / "pgdata" / "postmaster.pid"
    postgres = psutil.Process(int(postmaster.read_text().split()[0]))
    tree = dev.tree()
    assert {p.pid for p in tree} >= set(state["processes"].values())
    assert count(state["database_url"], "SELECT count(*) FROM leads WHERE external_id LIKE 'demo-%'") == 300
    # Every job did something visible, through the local fakes of the third-party APIs
    url = state["database_url"]
    dev.wait_for(lambda: count(url, "SELECT count(*) FROM lead_rollups"), 60, "stats.rollup rows")
    dev.wait_for(lambda: count(url, "SELECT count(*) FROM campaign_metrics"), 60, "campaign.sync figures")
    dev.wait_for(lambda: count(url, "SELECT count(*) FROM uploads WHERE status = 'completed'"), 90, "llm.ingest")
    dev.wait_for(lambda: count(url, "SELECT count(*) FROM backups WHERE verified"), 90, "backup.daily")
    dev.wait_for(lambda: count(url, "SELECT count(*) FROM audit_log WHERE action = 'lead.automated'"
                                    " AND status = 'completed'") == 5, 60, "five lead.created jobs")

    # Then Ctrl-C stops every child and both servers, and exits 0
    assert dev.ctrl_c() == 0, dev.output()
    assert_all_gone([*tree, postgres])
    assert not postmaster.exists() and not (dev.data_dir / "dev.json").exists()
    # Redis outlived the workers, which therefore stopped without connection errors
    logs = [path.read_text() for path in (dev.data_dir / "logs").glob("*.log")]
    assert len(logs) == len(CHILDREN) and not any("connection error" in log for log in logs)

    # And a second start reuses the database without duplicating the demo data
    again = run_dev(bare_env(), "--demo", "--no-scheduler")
    state = again.wait_ready()
    assert "added 0 campuses, 0 courses, 0 course_runs, 0 campaigns, 0 leads" in again.output()
    assert count(state["database_url"], "SELECT count(*) FROM leads") == 300
    tree = again.tree()
    assert again.terminate() == 0, again.output()
    assert_all_gone(tree)


def test_configured_services_are_used_not_embedded(run_dev, process_env, db, redis_client):
    # Given REDIS_URL / DATABASE_URL pointing at this session's servers
    dev = run_dev(process_env(CEP_METRICS_PORT="0", CEP_HTTP_PORT=str(free_port())), "--demo", "--no-scheduler")

    state = dev.wait_ready()
    output = dev.output()
    assert state["embedded"] == [] and set(state["processes"]) == CHILDREN - {"scheduler"}
    assert "(from REDIS_URL)" in output and "(from DATABASE_URL)" in output
    assert not (dev.data_dir / "redis").exists() and not (dev.data_dir / "postgres").exists()
    assert db.execute("SELECT count(*) AS n FROM leads").fetchone()["n"] == 300
    dev.wait_for(lambda: db.execute("SELECT count(*) AS n FROM lead_rollups").fetchone()["n"], 60, "stats.rollup rows")
    tree = dev.tree()
    assert dev.terminate() == 0, dev.output()
    assert_all_gone(tree)


def test_a_child_that_dies_stops_everything(run_dev, process_env, redis_client):
    dev = run_dev(process_env(CEP_METRICS_PORT="0", CEP_HTTP_PORT=str(free_port())), "--no-scheduler")
    state = dev.wait_ready()
    tree = dev.tree()

    # When a worker pool dies on its own (its Dramatiq worker process is orphaned)
    os.kill(state["processes"]["worker-llm"], signal.SIGKILL)

    # Then dev says so, stops the rest (orphans included) and exits non-zero
    assert dev.proc.wait(timeout=60) == 1
    assert "worker-llm" in dev.output() and "exited unexpectedly with code -9" in dev.output()
    assert_all_gone(tree)


def _get(url: str) -> str | None:
    import urllib.error
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=3).read().decode()
    except urllib.error.HTTPError as exc:  # 503 while a queue is still warming up is an answer too
        return exc.read().decode()
    except OSError:
        return None
