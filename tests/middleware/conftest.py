"""Fixtures for middleware tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules import sample_actors (which declares the testing.* actors) from this folder; importing
# it here would be too early: conftest files may load before the test services are configured.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def sample_env(process_env):
    """Worker-process environment that can import ``sample_actors``."""
    import os

    def make(**extra):
        env = process_env(**extra)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
        return env

    return make
