"""The benchmark's own virtual environment: create it when missing or outdated, then re-exec.

The peer SDKs must never become dependencies of the workspace (they would enter uv.lock and
every developer's environment), so the benchmark keeps them in ``bench/engine/.venv``, which is
git-ignored. A stamp file in it holds a hash of what was installed: the pinned peers
(``requirements.txt``), the engine's and the SDK's ``pyproject.toml`` and the Python version;
when any of them changes the environment is rebuilt from scratch. Fader's engine and SDK are
installed editable, so the benchmark always measures them as they are checked out.

Standard library only: this runs under the interpreter that launched ``run.py``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements.txt"
ENGINE = REPO / "packages" / "fader-engine"
SDK = REPO / "packages" / "fader-sdk"
STAMP = VENV / "fader-bench.stamp"
MIN_PYTHON = (3, 11)


def _python_in_venv() -> Path:
    return VENV / "bin" / "python"


def wanted_stamp() -> str:
    digest = hashlib.sha256()
    digest.update(REQUIREMENTS.read_bytes())
    digest.update((ENGINE / "pyproject.toml").read_bytes())
    digest.update((SDK / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def inside_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _is_current(stamp: str) -> bool:
    try:
        return STAMP.read_text().strip() == stamp and _python_in_venv().exists()
    except OSError:
        return False


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"bench: command failed ({result.returncode}): {' '.join(command)}")


def build(stamp: str) -> None:
    """(Re)create the venv with the pinned peers and the engine from this checkout."""
    print(f"bench: building {VENV.relative_to(REPO)} (peers from {REQUIREMENTS.name})", flush=True)
    _run([sys.executable, "-m", "venv", "--clear", str(VENV)])
    python = str(_python_in_venv())
    _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            str(REQUIREMENTS),
            "-e",
            str(ENGINE),
            "-e",
            str(SDK),
        ]
    )
    STAMP.write_text(stamp + "\n")


def ensure_and_reexec(argv: list[str]) -> None:
    """Return only when running inside an up-to-date venv; otherwise build it and exec into it."""
    if sys.version_info < MIN_PYTHON:
        raise SystemExit("bench: run with python3.11 or newer")
    stamp = wanted_stamp()
    if inside_venv():
        if not _is_current(stamp):
            raise SystemExit("bench: .venv is outdated; run with the system python3.11 to rebuild")
        return
    if not _is_current(stamp):
        build(stamp)
    python = str(_python_in_venv())
    os.execv(python, [python, str(HERE / "run.py"), *argv])
