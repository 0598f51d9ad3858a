"""``backup.daily`` of a large database through a real backup pool, against plain ``pg_dump -Fc | gzip``.

    python bench/backup_large.py [--gb 1.0]

Fills a scratch database to about ``--gb`` gigabytes (rows of text that compress about 2:1), then, in the same
run: times ``pg_dump -Fc | gzip > /dev/null`` with the same ``pg_dump``; starts SeaweedFS (``weed mini``) and a
``cep-automation worker backup`` pool, sends ``backup.daily``, and measures the time until the verified row is
in ``backups`` and the worker process's peak RSS (``VmHWM``). Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, versions_line, wait_until  # noqa: E402

ROW_BYTES = 512  # 32 md5 hex strings of 16 characters … see fill()


def fill(database_url: str, gigabytes: float) -> int:
    """Rows of random hex text until the database holds about ``gigabytes``; returns its size in bytes."""
    target = int(gigabytes * 1024**3)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_bulk (id bigint PRIMARY KEY, body text)")
        batch, start = 200_000, 0
        while conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] < target:  # type: ignore[index]
            conn.execute("INSERT INTO bench_bulk SELECT g, (SELECT string_agg(md5(random()::text || g || i), '')"
                         " FROM generate_series(1, 16) AS i) FROM generate_series(%s::bigint, %s::bigint) AS g",
                         (start + 1, start + batch))
            start += batch
        conn.execute("VACUUM ANALYZE bench_bulk")
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def plain_dump_seconds(pg_dump: str, database_url: str) -> tuple[float, int]:
    started = time.monotonic()
    dump = subprocess.Popen([pg_dump, "--format=custom", "--no-owner", "--dbname", database_url],
                            stdout=subprocess.PIPE)
    gzip = subprocess.Popen(["gzip", "-c"], stdin=dump.stdout, stdout=subprocess.PIPE)
    assert dump.stdout is not None and gzip.stdout is not None
    dump.stdout.close()
    size = 0
    while chunk := gzip.stdout.read(1 << 20):
        size += len(chunk)
    if gzip.wait() or dump.wait():
        raise SystemExit("plain pg_dump | gzip failed")
    return time.monotonic() - started, size


def peak_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def worker_child(pid: int) -> int | None:
    """The worker process the Dramatiq CLI forked (the one that runs the job)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as kids:
            found = [int(k) for k in kids.read().split()]
    except FileNotFoundError:
        return None
    return found[0] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="database size to back up (GB)")
    args = parser.parse_args()

    from cep_automation.domain import backups
    from cep_automation.testing import CLI
    from cep_automation.testing.s3_server import S3Server
    from cep_automation.testing.services import TestServices

    services = TestServices.start()
    s3 = S3Server().start()
    worker = None
    try:
        size = fill(services.database_url, args.gb)
        major = backups.server_major(services.database_url)
        pg_dump = backups.find_pg_tool("pg_dump", major, None)
        plain_s, gz_size = plain_dump_seconds(pg_dump, services.database_url)
        bucket = s3.create_bucket("bench-backups")
        env = {**os.environ, **services.env(), **s3.env(), "S3_BACKUP_BUCKET": bucket, "CEP_METRICS_PORT": "0",
               "CEP_MEDIA_DIR": ""}
        worker = subprocess.Popen([*CLI, "worker", "backup"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_until(lambda: worker_child(worker.pid) is not None, timeout=60)
        time.sleep(3)  # the worker process boots (imports, broker connection)
        child = worker_child(worker.pid)
        subprocess.run([*CLI, "enqueue", "backup.daily", "--json", '{"media": false}'], env=env, check=True,
                       capture_output=True)
        started = time.monotonic()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            def verified() -> bool:
                row = conn.execute("SELECT count(*) FROM backups WHERE verified AND kind = 'database'").fetchone()
                return bool(row and row[0])

            done = wait_until(verified, timeout=3600, poll_s=0.5)
            ours_s = time.monotonic() - started
            stored = conn.execute("SELECT size_bytes FROM backups WHERE kind = 'database'").fetchone()
        rss_mb = peak_rss_kb(child or 0) / 1024
        print(f"backup_large: {time.strftime('%Y-%m-%d')}; {machine_line()}; {versions_line()}")
        print(f"database {size / 1024**3:.2f} GB; pg_dump -Fc | gzip: {plain_s:.1f} s ({gz_size / 1024**2:.0f} MB)")
        print(f"backup.daily through the backup pool: {'verified' if done else 'NOT DONE'} in {ours_s:.1f} s "
              f"(dump {stored[0] / 1024**2 if stored else 0:.0f} MB), peak RSS of the worker process "
              f"{rss_mb:.0f} MB; time ratio ours/plain {ours_s / plain_s:.2f}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        s3.stop()
        services.stop()


if __name__ == "__main__":
    main()
