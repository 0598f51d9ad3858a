"""``cep-automation enqueue`` and ``cep-automation jobs``: send jobs and read their state."""

from __future__ import annotations

import json
from typing import Any

import click


def _parse_payload(pairs: tuple[str, ...], payload_json: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if payload_json:
        try:
            payload = json.loads(payload_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at position {exc.pos})", param_hint="--json") from None
        if not isinstance(payload, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--json")
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="ARGS")
        payload[name] = value
    return payload


def _timing(run_at: str | None, delay: str | None, debounce: str | None, debounce_key: str | None,
            priority: str | None = None) -> dict[str, Any]:
    """The enqueue keywords of the timing flags; a bad value is a ScheduleError (one line, exit 2)."""
    from cep_automation.runtime import timing

    options: dict[str, Any] = {}
    if priority is not None:
        options["priority"] = timing.priority(priority, "--priority")
    if run_at is not None:
        options["run_at"] = timing.parse_instant(run_at, "--run-at")
    if delay is not None:
        options["delay"] = int(timing.parse_seconds(delay, "--delay") * 1000)
    if debounce is not None:
        options["debounce"] = timing.parse_seconds(debounce, "--debounce")
    if debounce_key is not None:
        if debounce is None:
            raise click.UsageError("--debounce-key needs --debounce SECONDS")
        options["debounce_key"] = debounce_key
    return options


@click.command()
@click.argument("job")
@click.argument("args", nargs=-1)
@click.option("--json", "payload_json", help="Payload as a JSON object.")
@click.option("--run-at", metavar="ISO8601", help="Run at this instant, with its offset (2026-12-07T09:00:00+01:00).")
@click.option("--delay", metavar="SECONDS", help="Run this many seconds from now.")
@click.option("--debounce", metavar="SECONDS", help="Run once after this many quiet seconds (per --debounce-key).")
@click.option("--debounce-key", metavar="KEY", help="What a debounce groups by (default: the job's key, else the job).")
@click.option("--priority", metavar="N", help="0 (most urgent) to 100; each level may wait 10 s longer behind fresher"
              " work (default: the job's).")
@click.option("--ordering-key", metavar="KEY", help="Run after the jobs sent before with this key, one at a time.")
@click.option("--fairness-key", metavar="KEY", help="Take turns with other keys' jobs in the queue.")
def enqueue(job: str, args: tuple[str, ...], payload_json: str | None, run_at: str | None, delay: str | None,
            debounce: str | None, debounce_key: str | None, priority: str | None, ordering_key: str | None,
            fairness_key: str | None) -> None:
    """Send JOB with a payload given as NAME=VALUE pairs or --json; prints the message id.

    A queue past its soft limit takes the job deferred (said on stderr); past its hard limit the job is refused
    (exit 2). A job due beyond CEP_SCHEDULE_HOLD_AFTER_S is held in PostgreSQL: `jobs cancel ID` cancels it.
    """
    from cep_automation.db.redis_client import check_redis
    from cep_automation.runtime.enqueue import enqueue
    from cep_automation.runtime.timing import turn_keys

    payload = _parse_payload(args, payload_json)
    timing = _timing(run_at, delay, debounce, debounce_key, priority)
    timing.update(turn_keys(ordering_key, fairness_key, ("--ordering-key", "--fairness-key")))
    check_redis()
    enqueued = enqueue(job, payload, **timing)  # every refusal is a CepError: one line, exit 2
    click.echo(enqueued.message_id)
    if enqueued.held and enqueued.run_at is not None:
        click.echo(f"held until {enqueued.run_at.isoformat()}; cancel with: cep-automation jobs cancel"
                   f" {enqueued.message_id}", err=True)
    if enqueued.deferred_ms:
        click.echo(f"the queue is past its soft limit: accepted, deferred {enqueued.deferred_ms / 1000:g} s",
                   err=True)


@click.group()
def jobs() -> None:
    """Inspect jobs by message id."""


@jobs.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(message_id: str, as_json: bool) -> None:
    """Print the state, progress, log lines and result of MESSAGE_ID."""
    from cep_automation.records.job_state import get_job

    info = get_job(message_id)
    if info is None:
        _show_scheduled(message_id, as_json)
        return
    if as_json:
        click.echo(json.dumps(info.asdict(), indent=2, default=str))
        return
    click.echo(f"{info.message_id}  {info.actor}  queue={info.queue}  state={info.state}  "
               f"progress={info.progress}%  attempt={info.attempt}")
    if info.error:
        click.echo(f"error: {info.error}")
    for line in info.log:
        click.echo(f"  {line}")
    if info.result is not None:
        click.echo("result: " + json.dumps(info.result, default=str))


def _show_scheduled(message_id: str, as_json: bool) -> None:
    """A job held for later has no run record yet: show its scheduled row instead."""
    from cep_automation.db import connection
    from cep_automation.records import scheduled_jobs

    with connection() as conn:
        row = scheduled_jobs.get(conn, message_id)
    if row is None:
        raise click.ClickException(f"no job {message_id!r} (unknown, or older than its retention)")
    if as_json:
        click.echo(json.dumps(row, indent=2, default=str))
        return
    click.echo(f"{row['message_id']}  {row['actor']}  queue={row['queue']}  state={row['status']}  "
               f"run_at={row['run_at'].isoformat()}" + (f"  error={row['error']}" if row["error"] else ""))


@jobs.command()
@click.argument("message_id")
def cancel(message_id: str) -> None:
    """Cancel MESSAGE_ID, a job held for later (run_at/delay beyond CEP_SCHEDULE_HOLD_AFTER_S, or debounced)."""
    from cep_automation.runtime.enqueue import cancel as cancel_job

    cancel_job(message_id)  # ScheduledJobNotFound says why not: one line, exit 2
    click.echo(f"cancelled {message_id}")


@jobs.command()
@click.option("--queue", help="Only this queue.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def scheduled(queue: str | None, limit: int, as_json: bool) -> None:
    """List jobs held for later, soonest first."""
    from cep_automation.db import connection
    from cep_automation.records import scheduled_jobs

    with connection() as conn:
        rows = scheduled_jobs.list_waiting(conn, queue=queue, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no scheduled jobs")
    for r in rows:
        key = f"\tdebounce={r['debounce_key']} ({r['triggers']} triggers)" if r["debounce_key"] else ""
        click.echo(f"{r['message_id']}\t{r['run_at'].isoformat()}\t{r['queue']}\t{r['actor']}{key}")
