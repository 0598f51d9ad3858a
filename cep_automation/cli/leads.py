"""``cep-automation leads``: a lead's sequences and timeline, its status, and an operator's pause, resume and cancel.

``leads show ID [--json]``; ``leads status ID STATUS`` (enrolled and lost leave the sequences); ``leads pause ID``,
``leads resume ID``, ``leads cancel ID`` (``--sequence NAME`` for one sequence only). Errors are one line, exit 2.
"""

from __future__ import annotations

import json
import uuid

import click

from cep_automation.errors import CepError
from cep_automation.sequences import lifecycle
from cep_automation.sequences.calendar import marketing_hours
from cep_automation.sequences.definition import configured
from cep_automation.sequences.timeline import as_json, step_line, timeline


def lead_id_of(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise CepError(f"{value!r} is not a lead id (lead ids are UUIDs)") from None


def sequence_of(value: str | None) -> str | None:
    if value is not None and value not in configured():
        raise CepError(f"no sequence {value!r}: the sequences are {', '.join(sorted(configured()))}")
    return value


@click.group()
def leads() -> None:
    """A lead's sequences: show the timeline, set the status, pause, resume or cancel."""


@leads.command("show")
@click.argument("lead_id")
@click.option("--json", "as_json_", is_flag=True, help="The timeline as JSON.")
def show(lead_id: str, as_json_: bool) -> None:
    """The lead's sequences and every step: done, pending with its due time, skipped or cancelled and why."""
    from cep_automation.db import connection

    lead_id = lead_id_of(lead_id)
    with connection() as conn:
        found = timeline(conn, lead_id)
    if found is None:
        raise CepError(f"no lead {lead_id}")
    if as_json_:
        click.echo(json.dumps(as_json(found), indent=2))
        return
    lead = found["lead"]
    zone = marketing_hours().zone
    created = lead["created_at"].astimezone(zone)
    click.echo(f"lead {lead['id']}  status: {lead['status']}  created {created:%Y-%m-%d %H:%M}"
               + ("  (erased under the GDPR)" if lead["erased_at"] else ""))
    if not found["sequences"]:
        click.echo("  in no sequence")
    for enrollment in found["sequences"]:
        ended = f", {enrollment['exit_cause']}" if enrollment["exit_cause"] else ""
        click.echo(f"  {enrollment['sequence']}: {enrollment['status']}{ended} (entered "
                   f"{enrollment['entered_at'].astimezone(zone):%Y-%m-%d %H:%M})")
    for step in found["steps"]:
        click.echo("    " + step_line(step, zone))


def _change(action: str, lead_id: str, sequence: str | None) -> None:
    from cep_automation.db import connection

    lead_id, sequence = lead_id_of(lead_id), sequence_of(sequence)
    with connection() as conn, conn.transaction():
        if action == "pause":
            count = lifecycle.pause(conn, lead_id, sequence)
            said = f"{count} sequence(s) paused"
        elif action == "resume":
            count = lifecycle.resume(conn, lead_id, sequence)
            said = f"{count} sequence(s) resumed"
        else:
            count = lifecycle.cancel(conn, lead_id, sequence)
            said = f"sequences cancelled, {count} pending step(s) cancelled"
    if action != "cancel" and count == 0:
        state = "active" if action == "pause" else "paused"
        raise CepError(f"lead {lead_id} has no {state} sequence" + (f" {sequence}" if sequence else ""))
    click.echo(f"lead {lead_id}: {said}")


@leads.command("pause")
@click.argument("lead_id")
@click.option("--sequence", help="Only this sequence.")
def pause(lead_id: str, sequence: str | None) -> None:
    """Hold the lead's pending steps until resumed."""
    _change("pause", lead_id, sequence)


@leads.command("resume")
@click.argument("lead_id")
@click.option("--sequence", help="Only this sequence.")
def resume(lead_id: str, sequence: str | None) -> None:
    """Hold the pending steps again: at their time, or at the next marketing hours if it has passed."""
    _change("resume", lead_id, sequence)


@leads.command("cancel")
@click.argument("lead_id")
@click.option("--sequence", help="Only this sequence.")
def cancel(lead_id: str, sequence: str | None) -> None:
    """End the lead's sequences; every pending step is cancelled."""
    _change("cancel", lead_id, sequence)


@leads.command("status")
@click.argument("lead_id")
@click.argument("status", type=click.Choice(lifecycle.STATUSES))
def status(lead_id: str, status: str) -> None:
    """Record the lead's status; enrolled and lost leave every sequence."""
    from cep_automation.db import connection

    lead_id = lead_id_of(lead_id)
    with connection() as conn, conn.transaction():
        row, cancelled = lifecycle.set_status(conn, lead_id, status)
    if row is None:
        raise CepError(f"no lead {lead_id}")
    click.echo(f"lead {lead_id}: {status}" + (f", {cancelled} pending step(s) cancelled" if cancelled else ""))
