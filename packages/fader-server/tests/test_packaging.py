"""The three packages as a user gets them: built wheels, installed by plain pip, no workspace.

One build per test session (`uv build --all-packages --wheel`) and one clean venv
(``python3.11 -m venv``) with the three wheels installed by plain pip; their dependencies come from
PyPI, constrained to the versions of uv.lock (``uv export``) so the run is reproducible. Then
the installed `fader` serves the demo (SQLite in a tmp dir, a free port) and the README's SDK
snippet runs against it, unchanged but for its URL (and its key, when it writes one instead of
reading FADER_SDK_KEY).

The metadata checks hold what each wheel promises: one version everywhere, a version range
on the packages' dependencies on each other, the licence and its text, a README.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from processes import free_port, wait_ready

import fader_engine.__about__
import fader_sdk
import fader_sdk.__about__
import fader_server.__about__

REPO = Path(__file__).resolve().parents[3]
PACKAGES = {
    "fader-engine": "fader_engine",
    "fader-sdk": "fader_sdk",
    "fader-server": "fader_server",
}
VERSION = fader_server.__about__.__version__
SNIPPET_KEY = "fdr_srv_..."
"""The key in the README's snippet, if it writes one rather than reading FADER_SDK_KEY."""
SNIPPET_URL = "http://127.0.0.1:8400"


def _uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        pytest.skip("uv is not installed (`make sync` installs it into .tools/)")
    return found


def _run(
    *argv: str | Path,
    timeout: float = 600,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three wheels, built from this checkout: {distribution name: wheel}."""
    out = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "--all-packages", "--wheel", "--quiet", "-o", out, cwd=REPO)
    built = {}
    for name in PACKAGES:
        [wheel] = out.glob(f"{name.replace('-', '_')}-*.whl")
        built[name] = wheel
    return built


@pytest.fixture(scope="session")
def installed(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv holding the three wheels and their locked dependencies: its bin dir."""
    root = tmp_path_factory.mktemp("venv")
    constraints = root / "constraints.txt"
    constraints.write_text(
        _run(_uv(), "export", "--frozen", "--no-hashes", "--no-emit-workspace", cwd=REPO)
    )
    # The interpreter a user would have (not the workspace's venv, which uv makes without
    # pip); the new venv gets its own pip, which installs the wheels, as for a user.
    python = getattr(sys, "_base_executable", None) or sys.executable
    _run(python, "-m", "venv", root / "venv")
    bin_dir = root / "venv" / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    options = ["--disable-pip-version-check", "--no-compile", "-c", str(constraints)]
    _run(*pip, *options, *wheels.values(), timeout=900)
    return bin_dir


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_every_package_has_one_version_from_its_about_module() -> None:
    assert fader_engine.__about__.__version__ == VERSION
    assert fader_sdk.__about__.__version__ == VERSION
    assert fader_sdk.__version__ == VERSION


def test_each_wheel_carries_its_metadata(wheels: dict[str, Path]) -> None:
    for name, wheel in wheels.items():
        meta = metadata(wheel)
        assert (meta["Name"], meta["Version"]) == (name, VERSION)
        assert meta["License-Expression"] == "Apache-2.0"
        assert meta["Requires-Python"] == ">=3.11"
        assert meta["Description-Content-Type"] == "text/markdown"
        assert str(meta.get_payload()).startswith(f"# {name}\n")
        assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier", [])
        with zipfile.ZipFile(wheel) as archive:
            licence = archive.read(f"{PACKAGES[name]}-{VERSION}.dist-info/licenses/LICENSE")
        assert licence == (REPO / "LICENSE").read_bytes()
        for line in meta.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.name in PACKAGES:
                # A range that admits this version and not the next minor one.
                assert requirement.specifier.contains(VERSION), line
                major, minor, _ = VERSION.split(".")
                assert not requirement.specifier.contains(f"{major}.{int(minor) + 1}.0"), line


def test_each_package_has_the_repository_licence() -> None:
    for name in PACKAGES:
        assert (REPO / "packages" / name / "LICENSE").read_bytes() == (
            REPO / "LICENSE"
        ).read_bytes()


@pytest.fixture
def demo_server(installed: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The installed `fader serve --demo` on a free port: (url, admin token)."""
    port = free_port()
    token = "fdr_admin_packaging_" + os.urandom(16).hex()
    env = {**os.environ, "FADER_ADMIN_TOKEN": token, "FADER_ADMIN_PASSWORD": "pw-" + token}
    for variable in ("FADER_URL", "FADER_TOKEN", "FADER_DATABASE_URL", "VIRTUAL_ENV"):
        env.pop(variable, None)
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(installed / "fader", "serve", "--demo", "--data-dir", tmp_path / "data"),
                *("--port", str(port)),
            ],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # generous: first start compiles every module
        assert wait_ready(url, process, 180, interval=0.2), log.read_text()
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=30)


def readme_sdk_snippet() -> str:
    """The README's Python block that uses FaderClient, as a user would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    [snippet] = [b for b in blocks if "FaderClient(" in b]
    assert SNIPPET_URL in snippet, snippet
    return str(snippet)


@pytest.mark.slow  # installing from PyPI: 1-2 minutes on a loaded machine
def test_installed_wheels_serve_the_demo_and_the_readme_sdk_snippet_works(
    installed: Path, demo_server: tuple[str, str], tmp_path: Path
) -> None:
    url, token = demo_server
    version = _run(installed / "fader", "--version")
    assert version.strip() == f"fader {VERSION}"

    cli_env = {**os.environ, "FADER_URL": url, "FADER_TOKEN": token}
    key = _run(
        *(installed / "fader", "tokens", "create", "-p", "demo", "-e", "production"),
        *("--kind", "server", "--name", "packaging-test"),
        env=cli_env,
    ).strip()
    assert key.startswith("fdr_srv_")

    script = tmp_path / "snippet.py"
    script.write_text(readme_sdk_snippet().replace(SNIPPET_KEY, key).replace(SNIPPET_URL, url))
    sdk_env = {**os.environ, "FADER_SDK_KEY": key}
    _run(installed / "python", "-W", "error", script, cwd=tmp_path, env=sdk_env, timeout=120)
    cache = json.loads((tmp_path / "flags.json").read_text())  # written from the server
    assert "new-checkout" in json.dumps(cache)

    imported = _run(
        installed / "python",
        "-c",
        "import fader_server, fader_sdk, fader_engine, sys; print(fader_server.__file__)",
    )
    assert str(installed.parent) in imported  # the venv's copy, not this checkout's
