"""``cep-automation plugins``: every plugin found, where it came from, and whether it is enabled."""

from __future__ import annotations

import json

import click

from cep_automation.plugins import collect_integrations, describe_plugins
from cep_automation.settings import get_settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List plugins and the integrations they register."""
    settings = get_settings()
    found = describe_plugins(settings)
    registry = collect_integrations(settings)
    rows = []
    for info in found:
        integrations = [
            {"kind": kind, "name": name, "enabled": r.integration.enabled,
             "reason": r.integration.disabled_reason() or ""}
            for (kind, name), r in registry.entries.items() if r.plugin == info.name
        ]
        rows.append({**info.__dict__, "integrations": integrations})
    if as_json:
        click.echo(json.dumps({"plugins": rows, "conflicts": registry.conflicts}, indent=2))
        return
    for row in rows:
        state = "enabled" if row["enabled"] else f"disabled ({row['reason']})"
        click.echo(f"{row['name']}: {state} — {row['source']}")
        for integ in row["integrations"]:
            istate = "enabled" if integ["enabled"] else f"disabled ({integ['reason']})"
            click.echo(f"    {integ['kind']}:{integ['name']} {istate}")
    for conflict in registry.conflicts:
        click.echo(f"warning: {conflict}")
