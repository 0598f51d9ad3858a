"""Fixtures for middleware tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# Test modules import sample_actors (which declares the testing.* actors) from this folder, which pytest
# puts on sys.path (rootdir-relative "prepend" import mode); importing it here would be too early: conftest
# files may load before the test services are configured.


@pytest.fixture
def sample_env(process_env):
    """Worker-process environment that can import ``sample_actors``."""
    import os

    def make(**extra):
        env = process_env(**extra)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
        return env

    return make
