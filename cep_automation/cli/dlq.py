"""``cep-automation dlq``: list, show, retry, discard, stats and purge dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.records import dead_letters


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def dlq() -> None:
    """Dead letters: messages that will not be retried."""


@dlq.command("list")
@click.option("--status", type=click.Choice([*dead_letters.STATUSES, "all"]), default="dead", show_default=True)
@click.option("--queue", help="Only this queue.")
@click.option("--actor", help="Only this job.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
def list_(status: str, queue: str | None, actor: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List dead letters, newest first."""
    with connection() as conn:
        rows = dead_letters.list_letters(conn, status=None if status == "all" else status, queue=queue,
                                        actor=actor, limit=limit, offset=offset)

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            click.echo("no dead letters")
        for r in rows:
            status = f"{r['status']} ({r['retried_by']})" if r["retried_by"] else r["status"]
            auto = f"\tauto-retries={r['auto_retries']}" if r["auto_retries"] else ""
            click.echo(f"{r['id']}\t{r['failed_at']:%Y-%m-%d %H:%M:%S}\t{r['queue']}\t{r['actor']}\t{status}\t"
                       f"attempts={r['attempts']}{auto}\t{r['error_type']}: {r['error_message']}")

    _emit(rows, as_json, render)


@dlq.command()
@click.argument("letter_id", type=int)
@json_option
def show(letter_id: int, as_json: bool) -> None:
    """Show one dead letter with its payload and traceback."""
    with connection() as conn:
        row = dead_letters.get_letter(conn, letter_id)
        row["retries"] = dead_letters.retries(conn, letter_id)

    def render(r: dict[str, Any]) -> None:
        for name in ("id", "queue", "actor", "message_id", "status", "attempts", "enqueued_at", "failed_at",
                     "error_type", "error_message", "retried_message_id", "retried_by", "discard_reason"):
            click.echo(f"{name}: {r[name]}")
        chain = r["options"].get(opt.AUTO_RETRY)
        if chain:
            click.echo(f"auto-retry: {chain['count']} automatic retr{'y' if chain['count'] == 1 else 'ies'} since"
                       f" {chain['since']}")
        for retry in r["retries"]:
            click.echo(f"retried: {retry['retried_at']:%Y-%m-%d %H:%M:%S} by {retry['retried_by']} as"
                       f" {retry['message_id']} (after {retry['error_type']})")
        click.echo("payload: " + json.dumps(r["payload"]))
        click.echo("traceback:\n" + (r["traceback"] or "(none)"))

    _emit(row, as_json, render)


@dlq.command()
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead letter matching --queue/--actor.")
@click.option("--queue", help="With --all: only this queue.")
@click.option("--actor", help="With --all: only this job.")
@json_option
def retry(letter_ids: tuple[int, ...], retry_all: bool, queue: str | None, actor: str | None, as_json: bool) -> None:
    """Re-enqueue dead letters to their queues; prints each new message id."""
    from cep_automation.runtime.enqueue import retry_dead_letter

    with connection() as conn:
        if retry_all:
            letter_ids = tuple(r["id"] for r in dead_letters.list_letters(conn, queue=queue, actor=actor,
                                                                         limit=100_000))
        if not letter_ids:
            raise click.UsageError("name dead letter ids, or use --all")
        results: list[dict[str, Any]] = []
        stderr = click.get_text_stream("stderr")  # type: ignore[operator]  # click 8.5's deprecation shim is typed object
        with click.progressbar(letter_ids, label="retrying", file=stderr, hidden=len(letter_ids) < 2) as bar:
            for letter_id in bar:
                try:
                    results.append({"id": letter_id, "message_id": retry_dead_letter(conn, letter_id)})
                except Exception as exc:  # one bad letter must not stop a bulk retry
                    results.append({"id": letter_id, "error": str(exc)})

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            outcome = f"retried as {r['message_id']}" if "message_id" in r else f"error: {r['error']}"
            click.echo(f"{r['id']}\t{outcome}")

    _emit(results, as_json, render)
    if any("error" in r for r in results):
        raise SystemExit(1)


@dlq.command()
@click.argument("letter_id", type=int)
@click.option("--reason", required=True, help="Why it is abandoned (kept with the dead letter).")
def discard(letter_id: int, reason: str) -> None:
    """Mark a dead letter as abandoned."""
    with connection() as conn:
        dead_letters.discard(conn, letter_id, reason)
    click.echo(f"discarded {letter_id}")


@dlq.command()
@json_option
def stats(as_json: bool) -> None:
    """Counts by queue and status."""
    with connection() as conn:
        rows = dead_letters.stats(conn)

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows or [{"queue": "-", "status": "-", "count": 0}]:
            click.echo(f"{r['queue']}\t{r['status']}\t{r['count']}")

    _emit(rows, as_json, render)


@dlq.command()
@click.option("--older-than", "days", type=click.IntRange(0), required=True, help="Age in days.")
def purge(days: int) -> None:
    """Delete dead letters older than N days."""
    with connection() as conn:
        count = dead_letters.purge(conn, days)
    click.echo(f"purged {count} dead letter(s) older than {days} day(s)")
