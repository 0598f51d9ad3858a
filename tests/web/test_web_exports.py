"""The web package's public names, as its ``__all__`` lists them."""

from __future__ import annotations

import cep_automation.web as web


def test_exported_members():
    assert sorted(web.__all__) == ["ServerThread", "build_server", "create_app"]
    for name in web.__all__:
        assert getattr(web, name).__module__.startswith("cep_automation.web."), name
