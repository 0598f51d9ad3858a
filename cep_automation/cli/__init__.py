"""The ``cep-automation`` command line: one module per command family, assembled here."""

from __future__ import annotations

import sys

import click

from cep_automation import log_redaction
from cep_automation.cli import db, dlq, flow, gdpr, jobs, leads, plugins, run, serve, spend
from cep_automation.cli import dev as dev_module
from cep_automation.errors import CepError


@click.group()
@click.version_option(package_name="cep-automation")
def cli() -> None:
    """Background automation for CEP Formación (Dramatiq on Redis, PostgreSQL, pluggy plugins)."""


cli.add_command(db.db)
cli.add_command(dlq.dlq)
cli.add_command(flow.flow)
cli.add_command(gdpr.gdpr)
cli.add_command(jobs.enqueue)
cli.add_command(jobs.jobs)
cli.add_command(leads.leads)
cli.add_command(plugins.plugins)
cli.add_command(run.worker)
cli.add_command(run.scheduler)
cli.add_command(dev_module.dev)
cli.add_command(serve.serve)
cli.add_command(spend.spend_command)


def _register_plugin_commands() -> None:
    """Let plugins add commands; a plugin that does not match the hook specs stops start-up, by name."""
    from pluggy import PluginValidationError

    from cep_automation.plugins.manager import load_plugins, plugin_name
    from cep_automation.settings import get_settings

    try:
        manager = load_plugins(get_settings())
    except CepError:
        return  # settings problems are reported by the command that needs them
    except PluginValidationError as exc:
        name = plugin_name(exc.plugin)
        hint = f"fix or uninstall it, or block it with CEP_DISABLED_PLUGINS={name}"
        raise CepError(f"plugin {name}: {exc}; {hint}") from None
    manager.hook.register_commands(cli=cli)


def main() -> None:
    """Console-script entry point: operator errors print one clear message, exit code 2."""
    log_redaction.install()
    try:
        _register_plugin_commands()
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CepError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if isinstance(code, int):  # a command that ended with ctx.exit(N)
        sys.exit(code)
