"""The ``cep-automation`` command line: one module per command family, assembled here."""

from __future__ import annotations

import sys

import click

from cep_automation.cli import db, jobs, plugins, run
from cep_automation.errors import CepError


@click.group()
@click.version_option(package_name="cep-automation")
def cli() -> None:
    """Background automation for CEP Formación (Dramatiq on Redis, PostgreSQL, pluggy plugins)."""


cli.add_command(db.db)
cli.add_command(jobs.enqueue)
cli.add_command(jobs.jobs)
cli.add_command(plugins.plugins)
cli.add_command(run.worker)
cli.add_command(run.scheduler)


def _register_plugin_commands() -> None:
    """Let plugins add commands; a broken plugin must not take the whole CLI down."""
    from cep_automation.plugins.manager import load_plugins
    from cep_automation.settings import get_settings

    try:
        manager = load_plugins(get_settings())
    except CepError:
        return  # settings problems are reported by the command that needs them
    manager.hook.register_commands(cli=cli)


def main() -> None:
    """Console-script entry point: operator errors print one clear message, exit code 2."""
    try:
        _register_plugin_commands()
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CepError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
