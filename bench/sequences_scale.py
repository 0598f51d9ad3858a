"""Sequences at scale (issue 14): 50,000 leads in ``nurture``, 10,000 steps due in the same minute, one worker process.

    python bench/sequences_scale.py --quick      # 5,000 leads, 1,000 due (smoke run)
    python bench/sequences_scale.py              # 50,000 leads, 10,000 due

What it does, against real Redis and PostgreSQL and the fakes (fake Mandrill, ``--api-latency-ms`` per answer):
inserts the leads in one statement (consent, email, phone, a course run starting in 30 days), puts every one in
``nurture`` with :func:`lifecycle.enter` (``--enter-batch`` leads per transaction, timed), then moves the
``course_details`` step of ``--due`` of them, and the held job that carries it, to one instant T about 45 s
ahead. One worker process runs the automation pool as production does (``cep-automation worker automation``'s
command line: ``dramatiq cep_automation.actors --queues leads campaigns stats --processes 1``, ``--threads``),
and the bench plays the scheduler: a ``schedules.release`` message every 60 s, the first at T - 30 s (the worst
phase of the minute tick for jobs due at T: it releases them with only 30 s left). ``CEP_MARKETING_HOURS`` is
00:00-24:00, so nothing depends on the wall clock.

Start lateness of a step = when its email reached fake Mandrill − T (the send is the actor's second action,
after one SELECT, so this is the actor's start plus that read) — and, beside it, ``audit_log.wait_ms`` (the
actor's start, by the audit middleware, minus the message's eta) and ``sequence_steps.done_at`` − T.

Database work per step: when a PostgreSQL with ``pg_stat_statements`` can be had (a private cluster started
by the bench from the system's ``initdb``; ``--shared-postgres`` to skip it), the statements executed over the
run divided by the steps, by statement; always ``pg_stat_database`` (commits, tuples) and
``pg_stat_user_tables`` (seq/index scans) deltas of the scratch database, with a check that no sequential scan
touched ``sequence_steps`` or ``scheduled_jobs`` during the run.

Then plain Dramatiq beside it: the same number of messages to a no-op actor (``bench/flow_worker.py``'s
``bench.runat``) in Dramatiq's delay queue, due at one instant, one worker process with the same threads:
its lateness, and the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import psycopg
from common import (
    BENCH_DIR,
    EMAILS,
    bench_services,
    insert_leads,
    machine_line,
    percentile,
    stop_process,
    versions_line,
)

LEAD_TABLES = ("sequence_steps", "scheduled_jobs", "sequence_enrollments", "leads", "effects", "audit_log")


def private_postgres() -> tuple[str, Any] | None:
    """A throwaway PostgreSQL cluster with ``pg_stat_statements`` loaded: (admin URL, stop), or None if it cannot."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        return None
    bin_dir = os.path.dirname(found[-1])
    home = tempfile.mkdtemp(prefix="cep-bench-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(home, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = os.path.join(home, "data")
    options = (f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements"
               " -c max_connections=200")
    try:
        subprocess.run([*prefix, f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{home}/log", "-w", "start"],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no private PostgreSQL ({exc}); using the shared one without pg_stat_statements", file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)
        return None

    def stop() -> None:
        subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


def setup_leads(database_url: str, leads: int) -> list[str]:
    """``leads`` leads with consent, email and phone, asking about a run that starts in 30 days."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        campus = conn.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Sevilla', '+34699000002')"
                              " RETURNING id").fetchone()[0]
        course = conn.execute("INSERT INTO courses (title, offer_type) VALUES ('Excel avanzado', 'desempleados')"
                              " RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO course_runs (course_id, campus_id, starts_on) VALUES (%s, %s,"
                     " current_date + 30)", (course, campus))
    return insert_leads(database_url, leads)


def enter_all(lead_ids: list[str], batch: int) -> float:
    """Every lead into ``nurture``, ``batch`` per transaction; seconds taken."""
    from cep_automation.db import connection
    from cep_automation.sequences import lifecycle

    started = time.perf_counter()
    for first in range(0, len(lead_ids), batch):
        with connection() as conn, conn.transaction():
            for lead_id in lead_ids[first:first + batch]:
                entry = lifecycle.enter(conn, lead_id, "nurture")
                if entry.enrollment_id is None:
                    raise RuntimeError(f"lead {lead_id} did not enter nurture: {entry.reason}")
    return time.perf_counter() - started


def make_due(database_url: str, lead_ids: list[str], due: dt.datetime) -> int:
    """The leads' ``course_details`` step and its held job due at ``due`` (as testing.sequences.bring_due does)."""
    with psycopg.connect(database_url) as conn:
        moved = conn.execute(
            "WITH moved AS (UPDATE sequence_steps SET due_at = %(due)s WHERE name = 'course_details'"
            " AND status = 'pending' AND lead_id = ANY(%(leads)s::uuid[]) RETURNING message_id)"
            " UPDATE scheduled_jobs j SET run_at = %(due)s FROM moved WHERE j.message_id = moved.message_id"
            " AND j.status = 'scheduled'", {"due": due, "leads": lead_ids}).rowcount
    return moved


def snapshot(database_url: str, statements: bool) -> dict[str, Any]:
    """The scratch database's counters now (``pg_stat_statements`` rows by query when loaded)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        db = conn.execute("SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated,"
                          " tup_deleted FROM pg_stat_database WHERE datname = current_database()").fetchone()
        names = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated",
                 "tup_deleted")
        tables = {row[0]: row[1:] for row in conn.execute(
            "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_tup_ins, n_tup_upd"
            " FROM pg_stat_user_tables WHERE relname = ANY(%s)", (list(LEAD_TABLES),)).fetchall()}
        queries: dict[str, tuple[int, float]] = {}
        if statements:
            for query, calls, ms in conn.execute(
                    "SELECT query, calls, total_exec_time FROM pg_stat_statements s JOIN pg_database d"
                    " ON d.oid = s.dbid WHERE d.datname = current_database()").fetchall():
                before = queries.get(query, (0, 0.0))
                queries[query] = (before[0] + calls, before[1] + ms)
    return {"db": dict(zip(names, db, strict=True)), "tables": tables, "queries": queries}


def worker_argv(threads: int) -> list[str]:
    from cep_automation.cli.run import worker_argv as production

    return production("automation", 1, threads)


def wait_ready(database_url: str, timeout: float = 120) -> None:
    """Until the worker answers a ``schedules.release`` (nothing is due yet: it releases nothing)."""
    from cep_automation.actors import schedules_release

    message = schedules_release.send()
    deadline = time.time() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.time() < deadline:
            if conn.execute("SELECT 1 FROM audit_log WHERE message_id = %s", (message.message_id,)).fetchone():
                return
            time.sleep(0.5)
    raise RuntimeError(f"the worker did not run schedules.release within {timeout:.0f} s")


def run_ours(args: argparse.Namespace, services: Any, sandbox: Any, statements: bool) -> dict[str, Any]:
    from cep_automation.actors import schedules_release

    out: dict[str, Any] = {}
    started = time.perf_counter()
    lead_ids = setup_leads(services.database_url, args.leads)
    out["insert_s"] = time.perf_counter() - started
    out["enter_s"] = enter_all(lead_ids, args.enter_batch)
    out["enter_load"] = os.getloadavg()[0]
    print(f"  {args.leads:,} leads inserted in {out['insert_s']:.1f} s, entered nurture in {out['enter_s']:.1f} s "
          f"({out['enter_s'] * 1000 / args.leads:.2f} ms/lead; load {out['enter_load']:.2f})", file=sys.stderr)
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        counts = conn.execute("SELECT (SELECT count(*) FROM sequence_steps), (SELECT count(*) FROM scheduled_jobs"
                              " WHERE status = 'scheduled')").fetchone()
    out["steps_rows"], out["held_rows"] = counts
    log = os.path.join(tempfile.gettempdir(), "cep-bench-sequences-worker.log")
    proc = subprocess.Popen(worker_argv(args.threads), env=dict(os.environ), stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    try:
        wait_ready(services.database_url)
        due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=45)
        chosen = lead_ids[::max(1, len(lead_ids) // args.due)][:args.due]
        out["moved"] = make_due(services.database_url, chosen, due)
        due_s = due.timestamp()
        mandrill_before = sandbox.counts().get("FakeMandrill", 0)
        before = snapshot(services.database_url, statements)
        if statements:
            with psycopg.connect(services.database_url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
            before["queries"] = {}
        tick, ticks, done_at = due_s - 30, 0, None
        deadline = due_s + args.timeout
        while time.time() < deadline:
            if time.time() >= tick:
                schedules_release.send()
                ticks, tick = ticks + 1, tick + 60
            if sandbox.counts().get("FakeMandrill", 0) - mandrill_before >= out["moved"]:
                done_at = time.time()
                break
            time.sleep(0.05)
        out["ticks"], out["all_done_s"] = ticks, (done_at - due_s) if done_at else float("nan")
        out["run_load"] = os.getloadavg()[0]
        time.sleep(2)  # the last finish_step commits and the audit rows flush (every 200 ms)
        after = snapshot(services.database_url, statements)
    finally:
        stop_process(proc)
    out.update(measure(services.database_url, sandbox, chosen, due_s))
    out["before"], out["after"] = before, after
    return out


def measure(database_url: str, sandbox: Any, chosen: list[str], due_s: float) -> dict[str, Any]:
    """Each step's lateness three ways: fake Mandrill's receipt, the audit row's wait_ms, done_at."""
    offset = time.time() - time.monotonic()  # the fake stamps with time.monotonic(), one clock on Linux
    stamps = sandbox.stamps()
    received = [stamps[lead] + offset - due_s for lead in chosen if lead in stamps]
    with psycopg.connect(database_url, autocommit=True) as conn:
        done = [float(row[0]) for row in conn.execute(
            "SELECT extract(epoch FROM done_at) - %s FROM sequence_steps WHERE name = 'course_details'"
            " AND lead_id = ANY(%s::uuid[]) AND done_at IS NOT NULL", (due_s, chosen)).fetchall()]
        statuses = dict(conn.execute(
            "SELECT status, count(*) FROM sequence_steps WHERE name = 'course_details' AND lead_id = ANY(%s::uuid[])"
            " GROUP BY status", (chosen,)).fetchall())
        # Dramatiq drops a delayed message's eta when it moves it to its queue, so the audit's wait_ms runs from the
        # enqueue (the release): the actor's start is the release (released_at, the releasing transaction's start,
        # a few ms before the enqueue) plus wait_ms.
        waits = [float(row[0]) for row in conn.execute(
            "SELECT extract(epoch FROM j.released_at) + a.wait_ms / 1000.0 - %s FROM audit_log a JOIN scheduled_jobs j"
            " ON j.message_id = a.message_id WHERE a.action = 'sequence.step' AND a.wait_ms IS NOT NULL",
            (due_s,)).fetchall()]
        plans = explain(conn)
        release = conn.execute(
            "SELECT count(*) FILTER (WHERE released_at > run_at), min(extract(epoch FROM run_at - released_at)),"
            " max(extract(epoch FROM released_at)) - min(extract(epoch FROM released_at))"
            " FROM scheduled_jobs WHERE status = 'released' AND actor = 'sequence.step'").fetchone()
    return {"received": received, "done": done, "waits": waits, "statuses": statuses, "plans": plans,
            "released_late": release[0], "min_slack_s": float(release[1] or 0),
            "release_spread_s": float(release[2] or 0)}


EXPLAINED = {
    "release: due rows": "SELECT * FROM scheduled_jobs WHERE status = 'scheduled' AND run_at <= now() + CASE WHEN"
                         " debounce_key IS NULL THEN interval '90 s' ELSE interval '0' END AND queue <> ALL('{}')"
                         " ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
    "release: mark 1,000 released": "UPDATE scheduled_jobs SET status = 'released' WHERE message_id = ANY(%(ids)s)",
    "release: purge finished": "DELETE FROM scheduled_jobs WHERE status <> 'scheduled'"
                               " AND updated_at < now() - interval '7 days'",
    "step: step_to_run": "SELECT * FROM sequence_steps s JOIN sequence_enrollments e ON e.id = s.enrollment_id"
                         " JOIN leads l ON l.id = s.lead_id WHERE s.id = %(step)s",
    "step: finish (enrollment's pending steps)": "SELECT 1 FROM sequence_steps p WHERE p.enrollment_id"
                                                 " = %(enrollment)s AND p.status = 'pending'",
    "step: ledger read": "SELECT step FROM effects WHERE job_key = 'sequence.step:x'",
}


def explain(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Each statement's plan, its scan nodes only (EXPLAIN, not run; the tables as the run left them)."""
    plans = {}
    ids = [row[0] for row in conn.execute("SELECT message_id FROM scheduled_jobs LIMIT 1000").fetchall()]
    step, enrollment = conn.execute("SELECT id, enrollment_id FROM sequence_steps LIMIT 1").fetchone()
    params = {"ids": ids, "step": step, "enrollment": enrollment}
    for name, query in EXPLAINED.items():
        lines = [row[0] for row in conn.execute(f"EXPLAIN {query}", params if "%(" in query else None)]
        plans[name] = "; ".join(line.strip().lstrip("-> ").split("  (")[0] for line in lines if "Scan" in line)
    return plans


def run_plain(count: int, threads: int) -> dict[str, Any]:
    """Plain Dramatiq: ``count`` no-op messages due at one instant in the delay queue, one worker process."""
    from dramatiq.brokers.redis import RedisBroker
    from flow_worker import declare, notes_key

    from cep_automation.settings import get_settings

    broker = RedisBroker(url=get_settings().redis_url, namespace=f"{get_settings().cep_namespace}-plain")
    actor = declare(broker)["runat"]
    log = os.path.join(tempfile.gettempdir(), "cep-bench-sequences-worker.log")
    argv = [sys.executable, "-m", "dramatiq", "flow_worker", "--path", BENCH_DIR, "--processes", "1",
            "--threads", str(threads), "--queues", "bench-runat"]
    proc = subprocess.Popen(argv, env={**os.environ, "BENCH_SYSTEM": "plain"}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    key = notes_key(broker.namespace, "runat")
    try:
        due_s = float(int(time.time()) + 30 + count // 2500)
        for _ in range(count):
            actor.send_with_options(kwargs={"due": due_s}, delay=int((due_s - time.time()) * 1000))
        while time.time() < due_s + 600 and broker.client.llen(key) < count:
            time.sleep(0.2)
        all_done = time.time() - due_s
        lateness = [float(v) for v in broker.client.lrange(key, 0, -1)]
    finally:
        stop_process(proc)
    return {"received": lateness, "all_done_s": all_done, "load": os.getloadavg()[0]}


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {percentile(values, 50):6.2f} s  p95 {percentile(values, 95):6.2f} s  "
            f"max {max(values):6.2f} s")


def report(args: argparse.Namespace, ours: dict[str, Any], plain: dict[str, Any] | None, statements: bool) -> bool:
    steps = ours["moved"]
    print(f"sequences at scale, {time.strftime('%Y-%m-%d %H:%M')}: {args.leads:,} leads in nurture "
          f"({ours['steps_rows']:,} steps, {ours['held_rows']:,} held jobs), {steps:,} course_details emails due at "
          f"one instant; 1 worker process x {args.threads} threads; fake Mandrill {args.api_latency_ms:g} ms; "
          f"{versions_line()}")
    print(f"  entering: {ours['enter_s'] * 1000 / args.leads:.2f} ms per lead ({args.enter_batch} per transaction,"
          f" {ours['enter_s']:.0f} s in all; load {ours['enter_load']:.2f})")
    print(f"  release: {ours['ticks']} schedules.release ticks (first at due - 30 s); released after their time: "
          f"{ours['released_late']}; least time left at release {ours['min_slack_s']:.1f} s; releases spread over "
          f"{ours['release_spread_s']:.1f} s")
    print(f"  lateness, email at fake Mandrill - due: {spread(ours['received'])}  ({len(ours['received']):,} steps)")
    print(f"  lateness, actor start (released_at + audit wait_ms - due): {spread(ours['waits'])}")
    print(f"  done_at - due:                          {spread(ours['done'])}")
    print(f"  all {steps:,} done {ours['all_done_s']:.1f} s after the due time; step statuses {ours['statuses']}"
          f" (load {ours['run_load']:.2f})")
    within = [late for late in ours["received"] if late <= 60]
    verdict = len(within) == steps and ours["statuses"].get("sent", 0) == steps
    print(f"  started within 60 s of due: {len(within):,} of {steps:,} -> {'YES' if verdict else 'NO'}")
    before, after = ours["before"], ours["after"]
    db = {k: after["db"][k] - before["db"][k] for k in after["db"]}
    print("  per step (pg_stat_database deltas / steps): " + ", ".join(
        f"{k} {v / steps:.2f}" for k, v in db.items()))
    seq_hit = False
    for table in LEAD_TABLES:
        a, b = after["tables"].get(table), before["tables"].get(table)
        if not a or not b:
            continue
        seq, seq_read, idx = a[0] - b[0], a[1] - b[1], a[2] - b[2]
        seq_hit = seq_hit or (table == "sequence_steps" and seq > 0)
        if table == "scheduled_jobs" and seq > 0:
            print(f"    (scheduled_jobs: {seq} seq scans in {ours['ticks']} ticks: per tick, not per step)")
        print(f"    {table:22} seq scans {seq:5} (rows read {seq_read:9,})  index scans {idx:7,} "
              f"({idx / steps:5.2f}/step)  inserted {a[3] - b[3]:7,}  updated {a[4] - b[4]:7,}")
    print(f"  sequential scans of sequence_steps during the run: {'YES' if seq_hit else 'none'}")
    for name, plan in ours["plans"].items():
        print(f"    plan, {name}: {plan}")
    if statements:
        queries = after["queries"]
        total = sum(calls for calls, _ in queries.values())
        ms = sum(t for _, t in queries.values())
        print(f"  pg_stat_statements: {total:,} statements, {total / steps:.2f} per step, "
              f"{ms / steps:.2f} ms of execution per step; by statement (calls per step, ms per call):")
        for query, (calls, t) in sorted(queries.items(), key=lambda q: -q[1][0])[:14]:
            text = " ".join(query.split())
            print(f"    {calls / steps:6.3f}  {t / max(calls, 1):7.3f} ms  {text[:110]}")
    if plain is not None:
        print(f"  plain Dramatiq, {len(plain['received']):,} no-op messages due at one instant (delay queue), "
              f"1 process x {args.threads} threads: {spread(plain['received'])}; all done "
              f"{plain['all_done_s']:.1f} s after due (load {plain['load']:.2f})")
        ratio = percentile(ours["received"], 95) / max(percentile(plain["received"], 95), 1e-3)
        print(f"  ratio p95 lateness ours/plain: {ratio:.1f}; time to all done ours/plain: "
              f"{ours['all_done_s'] / max(plain['all_done_s'], 1e-3):.1f}")
    print(f"  {machine_line()}")
    if args.json:
        print(json.dumps({"p95": percentile(ours["received"], 95), "max": max(ours["received"], default=None),
                          "all_done_s": ours["all_done_s"], "within_60s": verdict}))
    return verdict and not seq_hit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 leads, 1,000 due (smoke run)")
    parser.add_argument("--leads", type=int, help="leads in nurture (default 50,000; --quick 5,000)")
    parser.add_argument("--due", type=int, help="steps due at one instant (default 10,000; --quick 1,000)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="added to every fake answer (default 0)")
    parser.add_argument("--enter-batch", type=int, default=500, help="leads entered per transaction (default 500)")
    parser.add_argument("--timeout", type=float, default=600, help="give up this long after the due time (s)")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Dramatiq comparison")
    parser.add_argument("--shared-postgres", action="store_true", help="no private cluster (no pg_stat_statements)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    args.leads = args.leads or (5_000 if args.quick else 50_000)
    args.due = args.due or (1_000 if args.quick else 10_000)
    print(f"before: {machine_line()}", file=sys.stderr)
    cluster = None if args.shared_postgres else private_postgres()
    if cluster:
        os.environ["CEP_TEST_DATABASE_URL"] = cluster[0]
    os.environ.update({"CEP_MARKETING_HOURS": "00:00-24:00", "CEP_LOG_LEVEL": "WARNING"})
    try:
        with bench_services(whatsapp_rate_limit=1_000_000, api_latency_ms=args.api_latency_ms) as (services, sandbox):
            if cluster:
                with psycopg.connect(services.database_url, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            sandbox.calls_per_lead = 1  # one course_details email per lead
            ours = run_ours(args, services, sandbox, statements=bool(cluster))
            plain = None if args.no_plain else run_plain(args.due, args.threads)
            ok = report(args, ours, plain, statements=bool(cluster))
    finally:
        if cluster:
            cluster[1]()
    print(f"after: {machine_line()}", file=sys.stderr)
    EMAILS.clear()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
