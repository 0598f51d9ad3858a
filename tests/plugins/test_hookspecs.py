"""Each hook exercised, and guards: every hook has a test, a docstring and a documentation section."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cep_automation
import cep_automation.plugins
from cep_automation.plugins import collect_integrations, hookspecs
from cep_automation.plugins.integration import Integration

TESTS = Path(__file__).parents[1]
DOCS = TESTS.parent / "docs" / "plugins.md"

HOOKS = sorted(
    name for name, obj in vars(hookspecs).items()
    if inspect.isfunction(obj) and hasattr(obj, f"{hookspecs.hookspec.project_name}_spec")
)


def test_the_hooks_are_found():
    assert HOOKS == ["register_commands", "register_integrations"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    sources = "\n".join(path.read_text(encoding="utf-8") for path in TESTS.rglob("test_*.py"))
    assert re.search(rf"^def test_hook_{hook}\b", sources, re.MULTILINE), f"write a test_hook_{hook} test"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    headings = re.findall(r"^## (\S+)\s*$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    assert hook in headings, f"add a '## {hook}' section to docs/plugins.md"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


def isort_order(name: str) -> tuple[int, str]:
    """isort's ``order_by_type``: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_plugins_package_exports_its_public_names_sorted():
    package = cep_automation.plugins
    public = sorted(
        (name for name, obj in vars(package).items()
         if not name.startswith("_") and not isinstance(obj, types.ModuleType) and name != "annotations"),
        key=isort_order,
    )
    assert package.__all__ == public
    namespace: dict[str, object] = {}
    exec("from cep_automation.plugins import *", namespace)  # noqa: S102 - the star import is the point
    assert sorted(set(namespace) - {"__builtins__"}, key=isort_order) == public


def test_hookimpl_is_reexported_from_the_package_root():
    assert cep_automation.hookimpl is cep_automation.plugins.hookimpl is hookspecs.hookimpl


class Crm(Integration):
    """A CRM that needs CRM_ENABLED."""

    name = "acme"
    kind = "crm"
    required_settings = ("crm_enabled",)


class FullPlugin:
    """Takes every argument of register_integrations."""

    def __init__(self):
        self.seen = []

    @cep_automation.hookimpl
    def register_integrations(self, register, settings):
        self.seen.append(settings)
        register(Crm(settings))


class RegisterOnly:
    """Takes a subset of the arguments, as pluggy allows."""

    @cep_automation.hookimpl
    def register_integrations(self, register):
        register(type("Pager", (Integration,), {"name": "pager", "kind": "alerts"})(None))


def test_hook_register_integrations(fresh_plugins, settings_with):
    full, register_only = FullPlugin(), RegisterOnly()
    fresh_plugins.register(full, name="full")
    fresh_plugins.register(register_only, name="register_only")
    try:
        settings = settings_with(crm_enabled=True)
        registry = collect_integrations(settings)

        assert full.seen == [settings]  # the validated settings are passed through
        crm = registry.get("crm", "acme")
        assert crm.settings is settings and crm.enabled  # CRM_ENABLED=true reached the integration
        assert registry.entries[("alerts", "pager")].plugin == "register_only"
    finally:
        fresh_plugins.unregister(name="full")
        fresh_plugins.unregister(name="register_only")


class CommandPlugin:
    """Adds a ``greet`` command and a ``report`` group."""

    @cep_automation.hookimpl
    def register_commands(self, cli):
        @cli.command()
        @click.argument("who")
        def greet(who):
            """Greet someone."""
            click.echo(f"hi {who}")

        @cli.group()
        def report():
            """Reports."""

        @report.command()
        def daily():
            click.echo("daily report")


def test_hook_register_commands(fresh_plugins, settings_with):
    fresh_plugins.register(CommandPlugin(), name="commands")
    try:
        pm = cep_automation.plugins.load_plugins(settings_with())
        cli = click.Group("cep-automation")
        pm.hook.register_commands(cli=cli)

        runner = CliRunner()
        assert runner.invoke(cli, ["greet", "Ana"]).output == "hi Ana\n"
        assert runner.invoke(cli, ["report", "daily"]).output == "daily report\n"
        assert "Greet someone." in runner.invoke(cli, ["--help"]).output
    finally:
        fresh_plugins.unregister(name="commands")
