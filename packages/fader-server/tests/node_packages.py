"""npm packages the tests run in Node (``node_flagd/``, ``oidc_provider/``): each directory pins
them in its ``package-lock.json`` and gets them with ``npm ci`` the first time a test needs
them; a machine without Node skips those tests rather than fail them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def installed(directory: Path, what: str) -> Path:
    """`directory` with its pinned packages installed (``npm ci`` once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"node and npm are needed to run {what} (install Node 20)")
    if not (directory / "node_modules" / ".package-lock.json").is_file():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return directory
