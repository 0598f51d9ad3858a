"""``cep-automation worker`` and ``cep-automation scheduler``: the long-running processes."""

from __future__ import annotations

import os
import sys

import click

from cep_automation.db.pool import check_database
from cep_automation.db.redis_client import check_redis
from cep_automation.queues import POLICIES, POOLS
from cep_automation.settings import get_settings


def preflight() -> None:
    """Fail early, in words, when settings, Redis or PostgreSQL are not usable."""
    get_settings()
    check_redis()
    check_database()


def worker_argv(pool: str, processes: int, threads: int | None) -> list[str]:
    """The ``dramatiq`` command line that runs one pool."""
    spec = POOLS[pool]
    return [
        sys.executable, "-m", "dramatiq", "cep_automation.actors",
        "--queues", *spec.queues,
        "--processes", str(processes),
        "--threads", str(threads or spec.threads),
        "--worker-shutdown-timeout", str(shutdown_timeout_s(pool) * 1000),
    ]


def shutdown_timeout_s(pool: str) -> int:
    """The pool's longest time limit: on SIGTERM a pool lets every running attempt finish (Dramatiq's own
    default, 10 minutes, would cut a backup short)."""
    return max(p.time_limit_s for p in POLICIES if p.pool == pool)


@click.command()
@click.argument("pool", type=click.Choice(sorted(POOLS)))
@click.option("--processes", "-p", default=1, show_default=True, help="Worker processes.")
@click.option("--threads", "-t", type=int, help="Threads per process (default: the pool's).")
def worker(pool: str, processes: int, threads: int | None) -> None:
    """Run the worker POOL: automation (leads, campaigns, stats; 5 threads), llm (2) or backup (1)."""
    preflight()
    argv = worker_argv(pool, processes, threads)
    click.echo(f"starting {pool} pool: {' '.join(argv[3:])}", err=True)
    os.execv(argv[0], argv)


@click.command()
def scheduler() -> None:
    """Run the periodiq scheduler (UTC); several schedulers never send the same tick twice."""
    preflight()
    import periodiq

    sys.argv = ["periodiq", "cep_automation.actors"]
    periodiq.entrypoint()
