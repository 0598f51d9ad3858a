"""``cep-automation spend``: today's and the last 30 days' spend per provider and model, and the caps' use."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from cep_automation.records import spend as records
from cep_automation.runtime import spend

COLUMNS = (("provider", "provider", "<"), ("item", "model / item", "<"), ("calls", "calls", ">"),
           ("tokens", "tokens", ">"), ("cost_eur", "EUR", ">"), ("cost_usd", "USD", ">"))


def report(days: int) -> dict[str, Any]:
    """What the command prints: the day, each period's rows and each cap's use today."""
    today = spend.today()
    first = today - dt.timedelta(days=days - 1)
    caps = []
    for cap, used in spend.usage_of_caps():
        caps.append({"cap": cap.name, "measure": cap.measure, "limit": cap.limit, "used": round(used, 6),
                     "share": round(used / cap.limit, 4), "provider": cap.provider, "kind": cap.kind})
    return {"day": today.isoformat(), "timezone": str(spend.MADRID),
            "today": records.by_provider_and_item(today, today),
            "period": {"first": first.isoformat(), "last": today.isoformat(), "days": days},
            "last_days": records.by_provider_and_item(first, today), "caps": caps}


def _cell(value: Any, name: str) -> str:
    if value is None:
        return "-"
    if name in ("cost_eur", "cost_usd"):
        return f"{value:,.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    click.echo(title)
    if not rows:
        click.echo("  no paid calls")
        return
    cells = [[_cell(row[name], name) for name, _, _ in COLUMNS] for row in rows]
    widths = [max(len(head), *(len(c[i]) for c in cells)) for i, (_, head, _) in enumerate(COLUMNS)]
    line = "  ".join(f"{head:{align}{w}}" for (_, head, align), w in zip(COLUMNS, widths, strict=True))
    click.echo("  " + line)
    for c in cells:
        click.echo("  " + "  ".join(f"{v:{a}{w}}" for v, (_, _, a), w in zip(c, COLUMNS, widths, strict=True)))
    total = sum(row["cost_eur"] or 0 for row in rows)
    click.echo(f"  total {total:,.4f} EUR, {sum(row['tokens'] for row in rows):,} tokens")


@click.command("spend")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True, help="The longer period.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def spend_command(days: int, as_json: bool) -> None:
    """Spend on paid APIs (LLM calls and others) per provider and model: today and the last DAYS days."""
    data = report(days)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _table(f"Today ({data['day']}, {data['timezone']})", data["today"])
    click.echo()
    _table(f"Last {days} days ({data['period']['first']} to {data['period']['last']})", data["last_days"])
    click.echo()
    click.echo("Caps today" if data["caps"] else "No spend caps set")
    for cap in data["caps"]:
        click.echo(f"  {cap['cap']}: {cap['used']:,.2f} of {cap['limit']:,.2f} ({cap['share']:.0%})")
