"""Where ``lead.created``'s time under the GIL goes, ours against plain Dramatiq: py-spy samples, every thread.

A worker running Python is bound by the GIL, so the time a thread *holds* it is what throughput pays. cProfile
(``lead_throughput.py --profile``) sees only worker threads and inflates call-heavy code such as redis-py; py-spy
samples every thread of the process from outside (``--gil``: only the thread holding the GIL), background writers
and step threads included, at no cost to the process. Each system runs in a child process of its own
(``lead_throughput.drain`` rounds after a warm-up); py-spy records only the timed rounds. The script prints the GIL
milliseconds a lead of each system, then the functions whose share differs most (inclusive, or ``--own``).

    pip install py-spy                                   # not a project dependency: a tool for this script
    python bench/gil_profile.py                          # 300 leads x 3 rounds each
    python bench/gil_profile.py --own --top 60 --keep /tmp/gil   # own time; keep the raw stacks

Read it with the run's noise in mind: sampled at 250 Hz, 900 leads give about 4 samples a lead, and a function
under 0.05 ms a lead is within the noise.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAME = re.compile(r"(.*) \((.*?):\d+\)$")


def child(which: str, leads: int, rounds: int, ready: Path, done: Path) -> None:
    """Warm up one system, say so in ``ready``, run the timed rounds, say so in ``done``."""
    import lead_throughput
    from common import bench_services

    logging.getLogger("dramatiq").setLevel(logging.ERROR)
    with bench_services(1_000_000, 0.0) as (services, sandbox):
        if which == "bare":
            import bare_leads

            broker = bare_leads.make_broker(services.redis_url, services.namespace)
            actor = bare_leads.declare(broker)
        else:
            from cep_automation.actors import broker  # type: ignore[assignment]
            from cep_automation.actors import lead_created as actor
        lead_throughput.drain(broker, actor, sandbox, services.database_url, 30, 8)
        ready.write_text(str(os.getpid()))
        while not done.with_suffix(".go").exists():  # py-spy is attached
            time.sleep(0.05)
        rows = [lead_throughput.drain(broker, actor, sandbox, services.database_url, leads, 8) for _ in range(rounds)]
        lines = [f"{which}: {row['process']:.1f} leads/s, {row['cpu_ms']:.1f} ms of CPU a lead\n" for row in rows]
        done.with_suffix(".tmp").write_text("".join(lines))
        done.with_suffix(".tmp").rename(done)  # whole, or not yet there


def record(which: str, args: argparse.Namespace, spy: str, workdir: Path) -> Path:
    """Run ``which`` in a child process with py-spy attached for its timed rounds; the raw stacks' file."""
    ready, done, out = workdir / f"{which}.ready", workdir / f"{which}.done", workdir / f"{which}.txt"
    proc = subprocess.Popen([sys.executable, __file__, "--child", which, "--leads", str(args.leads),
                             "--rounds", str(args.rounds), "--workdir", str(workdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # its log lines; its rounds' figures come in ``done``
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"{which}: the child process ended before its rounds (exit {proc.returncode})")
        time.sleep(0.1)
    sampler = subprocess.Popen([spy, "record", "--pid", ready.read_text(), "--gil", "--nonblocking", "--threads",
                                "-r", str(args.rate), "-f", "raw", "-o", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    done.with_suffix(".go").write_text("1")
    while not done.exists():
        if proc.poll() is not None:
            raise SystemExit(f"{which}: the child process failed during its rounds (exit {proc.returncode})")
        time.sleep(0.1)
    sampler.send_signal(signal.SIGINT)
    print(done.read_text(), end="")
    sampler.wait(timeout=60)
    proc.wait(timeout=120)
    return out


def load(path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Samples by function: inclusive, own, and the total."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        names = [_name(frame) for frame in stack.split(";")[1:]]  # the first is the thread
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    return inclusive, own, total


def _name(frame: str) -> str:
    found = FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    function, path = found.groups()
    for marker in ("site-packages/", "cep_automation/", "lib/python3.11/", "bench/"):
        path = path.split(marker)[-1]
    return f"{function} ({path})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=300, help="leads per round (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per system (default 3)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (default 250)")
    parser.add_argument("--top", type=int, default=40, help="functions listed (default 40)")
    parser.add_argument("--own", action="store_true", help="own time instead of inclusive time")
    parser.add_argument("--keep", metavar="DIR", help="keep the raw stacks (bare.txt, ours.txt) in DIR")
    parser.add_argument("--child", choices=("bare", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workdir = Path(args.workdir)
        child(args.child, args.leads, args.rounds, workdir / f"{args.child}.ready", workdir / f"{args.child}.done")
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gil-profile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for path in workdir.iterdir():  # a kept directory's last run must not look ready or done
        if path.suffix in (".ready", ".done", ".go", ".tmp"):
            path.unlink()
    paths = {which: record(which, args, spy, workdir) for which in ("bare", "ours")}
    report(paths, args)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(paths: dict[str, Path], args: argparse.Namespace) -> None:
    (bare_incl, bare_own, bare_total), (ours_incl, ours_own, ours_total) = load(paths["bare"]), load(paths["ours"])
    per_lead = 1000 / args.rate / (args.leads * args.rounds)  # ms of GIL a lead for one sample
    print(f"lead.created, {args.leads} leads x {args.rounds} rounds, GIL held (ms a lead): bare "
          f"{bare_total * per_lead:.2f}, ours {ours_total * per_lead:.2f}, ratio "
          f"{bare_total / max(ours_total, 1):.2f}")
    bare, ours = (bare_own, ours_own) if args.own else (bare_incl, ours_incl)
    print(f"{'function (' + ('own' if args.own else 'inclusive') + ')':86}{'bare':>8}{'ours':>8}{'diff':>8}")
    for name in sorted(set(bare) | set(ours), key=lambda n: -abs(ours[n] - bare[n]))[:args.top]:
        print(f"{name[:86]:86}{bare[name] * per_lead:8.2f}{ours[name] * per_lead:8.2f}"
              f"{(ours[name] - bare[name]) * per_lead:+8.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
