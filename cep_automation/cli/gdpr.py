"""``cep-automation gdpr``: erase a person everywhere, export what we hold about them, re-apply erasures
after a database restore (docs/gdpr.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

WAIT_POLL_S = 0.5


def identifier(email: str | None, phone: str | None, lead: str | None) -> tuple[str, str]:
    """The one identifier given, as (kind, value); a usage error for none or several."""
    given = [(kind, value) for kind, value in (("email", email), ("phone", phone), ("lead_id", lead)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --email, --phone or --lead")
    return given[0]


def _wait(erasure_id: str, message_id: str, timeout_s: float) -> dict[str, Any]:
    """The finished erasure record; a ClickException if its job died or the wait ran out."""
    from cep_automation.db import connection
    from cep_automation.gdpr.records import load_erasure
    from cep_automation.records.job_state import get_job

    deadline = time.monotonic() + timeout_s
    while True:
        with connection() as conn:
            erasure = load_erasure(conn, erasure_id)
        if erasure is not None and erasure.finished:
            return erasure.public()
        info = get_job(message_id)
        if info is not None and info.state in ("dead", "failed"):
            raise click.ClickException(f"the erasure job {message_id} failed: {info.error}; see "
                                       f"`cep-automation dlq list`, fix the cause and retry it")
        if time.monotonic() > deadline:
            raise click.ClickException(f"erasure {erasure_id} not finished after {timeout_s:g} s; it goes on in the "
                                       f"workers: `cep-automation jobs show {message_id}`")
        time.sleep(WAIT_POLL_S)


@click.group()
def gdpr() -> None:
    """Personal data under the GDPR/RGPD: erasure, access export, re-applying erasures after a restore."""


@gdpr.command()
@click.option("--email", help="The person's email address.")
@click.option("--phone", help="The person's phone number.")
@click.option("--lead", help="One of the person's lead ids (their other leads are found by email and phone).")
@click.option("--wait", is_flag=True, help="Wait until the erasure is done and print its record.")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True, help="Seconds --wait waits at most.")
def erase(email: str | None, phone: str | None, lead: str | None, wait: bool, timeout_s: float) -> None:
    """Erase a person from our database, Redis and every integration (job gdpr.erase); prints the message id."""
    from cep_automation.actors.gdpr import request_erasure
    from cep_automation.db.pool import check_database
    from cep_automation.db.redis_client import check_redis

    kind, value = identifier(email, phone, lead)
    check_database()
    check_redis()
    request = request_erasure(kind, value, via="cli")
    click.echo(request.message_id)
    click.echo(f"erasure {request.erasure_id}" + (" (already requested)" if request.deduplicated else ""), err=True)
    if not wait:
        return
    record = _wait(request.erasure_id, request.message_id, timeout_s)
    click.echo(json.dumps(record, indent=2))
    for name, outcome in (record.get("outcomes") or {}).get("integrations", {}).items():
        if str(outcome).startswith("manual action needed"):
            click.echo(f"{name}: {outcome} (docs/gdpr.md)", err=True)


@gdpr.command()
@click.option("--email", help="The person's email address.")
@click.option("--phone", help="The person's phone number.")
@click.option("--lead", help="One of the person's lead ids.")
def export(email: str | None, phone: str | None, lead: str | None) -> None:
    """Print, as JSON, everything we hold about a person (GDPR access request)."""
    from cep_automation.db import connection
    from cep_automation.db.pool import check_database
    from cep_automation.gdpr import export_subject

    kind, value = identifier(email, phone, lead)
    check_database()
    with connection() as conn:
        document = export_subject(conn, kind, value)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@gdpr.command()
def reapply() -> None:
    """After restoring a backup: erase again everyone an erasure record names (safe to run again)."""
    from cep_automation.db import connection
    from cep_automation.db.pool import check_database
    from cep_automation.db.redis_client import check_redis
    from cep_automation.gdpr import reapply as reapply_erasures

    check_database()
    check_redis()
    with connection() as conn:
        report = reapply_erasures(conn)
    click.echo(json.dumps(report, indent=2))
