"""``cep-automation flow``: what waits for a limit, a turn or its share, shared by every worker."""

from __future__ import annotations

import json
from typing import Any

import click

from cep_automation.db import connection
from cep_automation.flow import status
from cep_automation.records import scheduled_jobs


@click.command("flow")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def flow(as_json: bool) -> None:
    """Rates and concurrency limits in use, ordering keys with jobs waiting their turn, fair queues' keys, and
    per queue the jobs held for a time."""
    found = status.snapshot()
    found["held"] = _held()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo("rates in use (limit, bucket, booked ahead):")
    for row in found["rates"] or [{"limit": "-", "bucket": "", "booked_ahead_s": 0}]:
        click.echo(f"  {row['limit']:24} {row['bucket']:32} {row['booked_ahead_s']:8.2f} s")
    click.echo("concurrency limits (limit, bucket, running now):")
    for row in found["running"] or [{"limit": "-", "bucket": "", "running": 0}]:
        click.echo(f"  {row['limit']:24} {row['bucket']:32} {row['running']:8}")
    click.echo("ordering keys (key, jobs in line, parked waiting their turn):")
    for row in found["ordering"] or [{"key": "-", "in_line": 0, "parked": 0}]:
        click.echo(f"  {row['key']:57} {row['in_line']:8} {row['parked']:8}")
    click.echo("fair queues (queue, jobs waiting, keys taking turns, next keys):")
    for row in found["fair"] or [{"queue": "-", "waiting": 0, "keys": 0, "next_keys": []}]:
        click.echo(f"  {row['queue']:24} {row['waiting']:8} {row['keys']:8}  {', '.join(row['next_keys'])}")
    click.echo("held for a time (queue, jobs held, of which debounced, next due):")
    for row in found["held"] or [{"queue": "-", "held": 0, "debounced": 0, "next_run_at": "-"}]:
        click.echo(f"  {row['queue']:24} {row['held']:8} {row['debounced']:8}  {row['next_run_at']}")


def _held() -> list[dict[str, Any]]:
    """Per queue, the jobs held in PostgreSQL until their time (``run_at``, a long delay, debounce)."""
    with connection() as conn:
        return [{**row, "next_run_at": row["next_run_at"].isoformat()} for row in scheduled_jobs.waiting_by_queue(conn)]
