"""Install plugin packages for discovery tests, the way an operator would, without the network.

A package is built with pip from a copy of its source folder (setuptools leaves ``build/`` and
``*.egg-info`` beside the sources) into its own ``--target`` directory; a subprocess with that
directory on ``PYTHONPATH`` then discovers it through its real ``entry_points.txt``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

PIP_OFFLINE = ("--no-deps", "--no-build-isolation", "--no-index", "--quiet")
_LEFTOVERS = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


class PackageInstallError(RuntimeError):
    """pip could not build or install a plugin package (pip's output is in the message)."""


def install_package(source: Path, scratch: Path) -> Path:
    """``pip install ./<folder>/<name> --target`` from a copy under ``scratch``; return the target directory.

    The copy keeps the source's last two path parts, so ``contrib/cep-automation-hubspot`` is
    installed exactly as ``pip install ./contrib/cep-automation-hubspot`` from the repository root.
    """
    relative = Path(source.parent.name, source.name)
    copy = scratch / "src" / relative
    if not copy.exists():
        shutil.copytree(source, copy, ignore=_LEFTOVERS)
    site = scratch / f"site-{source.name}"
    command = [sys.executable, "-m", "pip", "install", *PIP_OFFLINE, "--target", str(site), f"./{relative.as_posix()}"]
    pip = subprocess.run(command, cwd=scratch / "src", capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        raise PackageInstallError(
            f"pip could not install {source.name} without build isolation; the environment needs "
            f"setuptools>=70.1 (or the wheel package) to build wheels:\n{pip.stdout}\n{pip.stderr}"
        )
    return site


def with_pythonpath(env: Mapping[str, str], sites: Iterable[Path]) -> dict[str, str]:
    """A copy of ``env`` with ``sites`` in front of its ``PYTHONPATH``."""
    paths = [str(site) for site in sites]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}
