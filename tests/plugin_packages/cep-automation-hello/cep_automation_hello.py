"""The smallest cep_automation plugin, used by the test suite to prove discovery and blocking."""

from __future__ import annotations

import click

import cep_automation
from cep_automation.plugins import Integration


class HelloCrm(Integration):
    """A CRM that needs ``HELLO_TOKEN``; no such setting exists, so it always shows as disabled."""

    name = "hello"
    kind = "crm"
    required_settings = ("hello_token",)


class HelloAlerts(Integration):
    """An alerts sink that needs nothing, so it is always enabled."""

    name = "hello-alerts"
    kind = "alerts"

    def send(self, severity: str, title: str, body: str = "", **context: object) -> None:
        click.echo(f"hello-alerts [{severity}] {title} {body}".rstrip())


@cep_automation.hookimpl
def register_integrations(register, settings):  # type: ignore[no-untyped-def]
    register(HelloCrm(settings))
    register(HelloAlerts(settings))


@click.command()
@click.option("--name", default="operator", help="Who to greet.")
def hello(name: str) -> None:
    """Say hello from the cep-automation-hello plugin."""
    click.echo(f"hello, {name}, from cep-automation-hello")


@cep_automation.hookimpl
def register_commands(cli):  # type: ignore[no-untyped-def]
    cli.add_command(hello)
