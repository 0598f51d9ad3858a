"""``campaign.sync`` of 100 campaigns over 1,000,000 leads, with and without the index of migration 0003.

    python bench/campaign_sync.py [--campaigns 100] [--leads 1000000] [--latency-ms 50] [--rounds 3]

A scratch database (``TestServices``, migrated: ``leads_campaign_created_idx`` exists) gets ``--campaigns``
active campaigns started a year ago and ``--leads`` leads spread over that year (one ``INSERT … SELECT …
generate_series``; one lead in five has no campaign), then ``VACUUM ANALYZE``. The GA4 and Meta fakes run in a
spawned child process (so they do not compete for this process's GIL), answer every request after
``--latency-ms``, and hold insights for every campaign. Each round drops the index, times ``campaign.sync`` of
all active campaigns (called in this process, as the tests do: the period is each campaign's life so far, as
in the scheduled run), creates the index again and times it once more. Printed: the plan of the lead count
each way, every round, the medians, the ratio, the date and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, versions_line  # noqa: E402

INDEX = "leads_campaign_created_idx"
CREATE_INDEX = f"CREATE INDEX {INDEX} ON leads (campaign_id, created_at)"  # what migration 0003 builds
GOAL_S = 3.0


def meta_id(n: int) -> str:
    return f"2384{n:06d}"


def _serve_fakes(conn: Any, latency_s: float, campaigns: int) -> None:
    """Child process: every fake, insights for campaigns 1…``campaigns``; answers ``counts`` and ``stop``."""
    import datetime as dt

    from cep_automation.testing.sandbox import Sandbox

    sandbox = Sandbox().start()
    today = dt.date.today()
    for n in range(1, campaigns + 1):
        sandbox.meta.set_insights(meta_id(n), [{"impressions": 20000 + n, "clicks": 400 + n, "spend": "150.00",
                                                "actions": [{"action_type": "lead", "value": 5}]}])
        for days_ago in (1, 30, 200):
            day = (today - dt.timedelta(days=days_ago)).strftime("%Y%m%d")
            sandbox.ga4.add_row(f"tag-{n}", sessions=150 + n, key_events=2, date=day)
    for fake in sandbox.fakes:
        fake.latency_s = latency_s
    conn.send(sandbox.env())
    while (command := conn.recv()) != "stop":
        conn.send({type(f).__name__: len(f.requests) for f in sandbox.fakes} if command == "counts" else None)
    sandbox.stop()
    conn.send("stopped")


class FakesProcess:
    """The fakes in a child process; :attr:`env` points cep_automation at them."""

    def __init__(self, latency_s: float, campaigns: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(target=_serve_fakes, args=(child, latency_s, campaigns), daemon=True)
        self.process.start()
        if not self._conn.poll(60):
            self.process.kill()
            raise RuntimeError(f"the fakes did not start (exit code {self.process.exitcode})")
        self.env: dict[str, str] = self._conn.recv()

    def counts(self) -> dict[str, int]:
        with self._lock:
            self._conn.send("counts")
            return self._conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        with self._lock:
            self._conn.send("stop")
            self._conn.recv()
        self.process.join(10)


def fill(database_url: str, campaigns: int, leads: int) -> float:
    """Campaigns started a year ago, leads over that year; returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO campaigns (id, name, tracking_tag, meta_campaign_id, budget, created_at)"
                     " SELECT g, 'Campaña ' || g, 'tag-' || g, '2384' || lpad(g::text, 6, '0'), 100000,"
                     " now() - interval '365 days' FROM generate_series(1, %s) AS g", (campaigns,))
        conn.execute("SELECT setval('campaigns_id_seq', %s)", (campaigns,))
        conn.execute("INSERT INTO leads (name, email, source, campaign_id, created_at)"
                     " SELECT 'Lead ' || g, 'lead' || g || '@example.com', 'web',"
                     " CASE WHEN g %% 5 = 0 THEN NULL ELSE 1 + g %% %s END,"
                     " now() - (g %% 365) * interval '1 day' - (g %% 86400) * interval '1 second'"
                     " FROM generate_series(1, %s) AS g", (campaigns, leads))
        conn.execute("VACUUM ANALYZE leads")
    return time.monotonic() - started


def set_index(database_url: str, present: bool) -> float:
    """Create or drop the index; returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CREATE_INDEX if present else f"DROP INDEX IF EXISTS {INDEX}")
    return time.monotonic() - started


def count_plan(database_url: str) -> str:
    """The scan node PostgreSQL chooses for one campaign's lead count over its life so far."""
    import datetime as dt

    from cep_automation.domain import campaigns

    with psycopg.connect(database_url) as conn:
        created = conn.execute("SELECT created_at::date FROM campaigns WHERE id = 1").fetchone()[0]  # type: ignore[index]
        params = campaigns.count_leads_params(1, created, dt.date.today())
        lines = [r[0] for r in conn.execute("EXPLAIN " + campaigns.COUNT_LEADS, params).fetchall()]
    scans = [line.strip().removeprefix("->  ") for line in lines if "Scan" in line]
    return "; ".join(s.split("  (cost")[0] for s in scans)


def time_sync(campaigns: int) -> float:
    from cep_automation.actors import campaign_sync

    started = time.monotonic()
    result = campaign_sync()
    elapsed = time.monotonic() - started
    if result["synced"] != campaigns:
        raise SystemExit(f"campaign.sync synced {result['synced']} of {campaigns} campaigns: {result['steps']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the GA4 and Meta fakes' answer time")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from cep_automation.testing.services import TestServices

    load_before = machine_line()
    services = TestServices.start()
    prometheus_dir = tempfile.mkdtemp(prefix="cep-bench-prometheus-")
    fakes = None
    try:
        fakes = FakesProcess(args.latency_ms / 1000, args.campaigns)
        os.environ.update({**services.env(), **fakes.env, "CEP_METRICS_PORT": "0",
                           "PROMETHEUS_MULTIPROC_DIR": prometheus_dir})
        fill_s = fill(services.database_url, args.campaigns, args.leads)
        time_sync(args.campaigns)  # warm-up, with the index: connection pool, integrations, GA4 token
        plans = {}
        times: dict[str, list[float]] = {"without": [], "with": []}
        index_s = []
        for round_no in range(1, args.rounds + 1):
            set_index(services.database_url, present=False)
            plans["without"] = count_plan(services.database_url)
            times["without"].append(time_sync(args.campaigns))
            index_s.append(set_index(services.database_url, present=True))
            plans["with"] = count_plan(services.database_url)
            times["with"].append(time_sync(args.campaigns))
            print(f"round {round_no}: without the index {times['without'][-1]:.2f} s, "
                  f"with {times['with'][-1]:.2f} s", flush=True)
        without, with_index = statistics.median(times["without"]), statistics.median(times["with"])
        requests = fakes.counts()
        print(f"campaign_sync: {time.strftime('%Y-%m-%d %H:%M')}; {versions_line()}")
        print(f"load before: {load_before}; after: {machine_line()}")
        print(f"{args.campaigns} campaigns, {args.leads:,} leads (filled in {fill_s:.1f} s), GA4 and Meta fakes "
              f"answering in {args.latency_ms:.0f} ms ({requests['FakeGA4']} GA4 and {requests['FakeMetaGraph']} "
              f"Meta requests in all); {args.rounds} rounds, medians; CREATE INDEX took "
              f"{statistics.median(index_s):.1f} s")
        print(f"lead count without the index: {plans['without']}")
        print(f"lead count with the index:    {plans['with']}")
        print(f"campaign.sync of all {args.campaigns}: without the index {without:.2f} s, with {with_index:.2f} s; "
              f"ratio without/with {without / with_index:.1f}; goal < {GOAL_S:.0f} s with the index: "
              f"{'met' if with_index < GOAL_S else 'NOT met'}")
    finally:
        from cep_automation.db.pool import close_pool

        close_pool()
        if fakes is not None:
            fakes.stop()
        services.stop()
        shutil.rmtree(prometheus_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
