"""The plugin SDK, ``cep_automation.plugins``: ``__all__`` lists every public name, and each one exists.

After httpx's ``tests/test_exported_members.py``; the contrib packages, which import nothing else of
``cep_automation`` outside their tests and fakes, prove that it is enough to write a plugin.
"""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import pytest

import cep_automation.errors
import cep_automation.redact
from cep_automation import plugins
from cep_automation.plugins import http, kinds

CONTRIB = Path(__file__).parents[2] / "contrib"


def public_names(module: types.ModuleType) -> set[str]:
    """Names a star import would give if there were no ``__all__`` (submodules and ``annotations`` aside)."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"}


def test_all_lists_every_public_name():
    assert sorted(plugins.__all__) == sorted(public_names(plugins))
    assert len(set(plugins.__all__)) == len(plugins.__all__)


@pytest.mark.parametrize("name", plugins.__all__)
def test_every_name_in_all_exists(name):
    assert getattr(plugins, name, None) is not None


def test_every_kind_and_its_dataclasses_are_exported():
    defined_in_kinds = {name for name, value in vars(kinds).items()
                        if inspect.isclass(value) and value.__module__ == kinds.__name__}
    assert defined_in_kinds == {"Ads", "Alerts", "Analytics", "CRM", "CampaignMetrics", "Completion", "Contact",
                                "EmailMarketing", "LLM", "Messaging", "Storage", "TransactionalEmail"}
    assert defined_in_kinds <= set(plugins.__all__)


@pytest.mark.parametrize("module, names", [
    (http, ["CONNECT_TIMEOUT_S", "READ_TIMEOUT_S", "HttpClient", "HttpIntegration", "retry_after_seconds"]),
    (cep_automation.errors, ["CepError", "PermanentError", "TransientError"]),
    (cep_automation.redact, ["mask_email", "mask_phone", "redact"]),
])
def test_exports_are_the_objects_of_their_home_modules(module, names):
    for name in names:
        assert getattr(plugins, name) is getattr(module, name), name


def cep_imports(path: Path) -> set[str]:
    """The ``cep_automation`` modules a file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "cep_automation" or name.startswith("cep_automation.")}


@pytest.mark.parametrize("path", sorted(CONTRIB.glob("*/cep_automation_*/*.py")) + sorted(CONTRIB.glob("*/tests/*.py")),
                         ids=lambda p: str(p.relative_to(CONTRIB)))
def test_contrib_packages_import_only_the_sdk(path):
    allowed = {"cep_automation.plugins"}
    if path.name == "testing.py" or path.parent.name == "tests":
        allowed.add("cep_automation.testing")  # fakes and tests use the shipped test kit
    assert cep_imports(path) <= allowed
