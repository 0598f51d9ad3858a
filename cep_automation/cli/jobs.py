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


@click.command()
@click.argument("job")
@click.argument("args", nargs=-1)
@click.option("--json", "payload_json", help="Payload as a JSON object.")
def enqueue(job: str, args: tuple[str, ...], payload_json: str | None) -> None:
    """Send JOB with a payload given as NAME=VALUE pairs or --json; prints the message id."""
    from cep_automation.db.redis_client import check_redis
    from cep_automation.runtime.enqueue import enqueue

    payload = _parse_payload(args, payload_json)
    check_redis()
    enqueued = enqueue(job, payload)  # UnknownJob and PayloadError are CepErrors: one line, exit 2
    click.echo(enqueued.message_id)


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
        raise click.ClickException(f"no job {message_id!r} (unknown, or older than its retention)")
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
