"""The README's command blocks run as written against a real `fader serve --demo`.

What runs: every ```sh and ```python block of README.md, in the README's order, whatever blocks
there are (a block added later runs too), except those matched by `EXCLUDED`, each with its
reason. Every exclusion must match exactly one block, so a reworded block is noticed here.

The one substitution: the README's server is ``http://127.0.0.1:8400`` (`make run`'s address).
The test's server listens on a free port, so that URL in a block becomes the test server's, and
``FADER_URL`` (whose default in the command line is that same address) is set to it. Nothing
else in a block is changed.

The shell: the README says to run the blocks in one shell. Here each block runs in its own
``bash -euo pipefail`` so that a failure names its block, and what a block exported is handed
to the blocks after it (saved with ``export -p``), as one shell would carry it. Python snippets
run with ``.venv/bin/python``, the README's convention, in that same environment. The test's
own virtual environment is taken off ``PATH``: a block must put ``fader`` on it as the README
says.

The directory: a temporary clone root as far as the blocks read it: ``.venv`` and ``examples``
(links to this checkout's), and ``data/``, where the server keeps its database and where
``data/admin-token`` holds the token the server was started with, as the README's
terminal-1 block (excluded: it runs `make run`) leaves them.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processes import wait_ready

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8400"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXCLUDED = {
    "make test    #": (
        "Quick start: `make run` is the server this test starts itself, and `make test` is the "
        "whole suite, this test included"
    ),
    "FADER_ADMIN_TOKEN=$(cat data/admin-token) make run": (
        "terminal 1 runs `make run`: the test does what it does, writing data/admin-token and "
        "starting `fader serve --demo --data-dir data` with FADER_ADMIN_TOKEN set to it"
    ),
    "bench/engine/run.py": (
        "benchmarks run for minutes and install the SDKs they compare with; they are scripts "
        "that print figures, not tests"
    ),
}
STARTUP_SECONDS = 120.0
BLOCK_SECONDS = 300.0
"""Generous limits for a loaded machine: only a hang fails on them."""


@dataclass(frozen=True)
class Block:
    number: int
    language: str
    text: str

    def describe(self) -> str:
        first = self.text.strip().splitlines()[0]
        return f"README block {self.number} ({self.language}): {first}"


def readme_blocks() -> list[Block]:
    return [
        Block(number, language, text)
        for number, (language, text) in enumerate(BLOCK.findall(README.read_text()), 1)
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fader_serve_demo(root: Path, token: str) -> Iterator[str]:
    """`fader serve --demo --data-dir data` in `root` on a free port, until the block ends."""
    port = _free_port()
    env = {
        **os.environ,
        "FADER_ADMIN_TOKEN": token,
        "FADER_ADMIN_PASSWORD": "correct-horse-" + secrets.token_hex(8),
    }
    log_path = root / "server.log"
    command = [sys.executable, "-c", "from fader_server.cli.main import main; main()"]
    command += ["serve", "--demo", "--data-dir", "data", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(url, process, STARTUP_SECONDS):
            raise RuntimeError(
                f"fader serve did not become ready (exit code {process.poll()}):\n"
                + log_path.read_text(errors="replace")
            )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def clone_root(tmp_path: Path, token: str) -> Path:
    root = tmp_path / "clone"
    root.mkdir()
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "examples").symlink_to(ROOT / "examples")
    data = root / "data"
    data.mkdir(mode=0o700)
    (data / "admin-token").write_text(token + "\n")
    return root


def shell_environment(tmp_path: Path, url: str) -> dict[str, str]:
    """The user's shell: no FADER_* settings of the test's own, no virtual environment."""
    venv_bin = str(Path(sys.executable).parent)
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv_bin]
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FADER_") and name not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        PATH=os.pathsep.join(path),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        FADER_URL=url,
    )
    return env


def run(block: Block, root: Path, env: dict[str, str], state: Path, url: str) -> None:
    text = block.text.replace(README_URL, url)
    if block.language == "python":
        snippet = root / f"readme-snippet-{block.number}.py"
        snippet.write_text(text)
        text = f".venv/bin/python {snippet.name}\n"
    script = f"source {state}\n{text}\nexport -p > {state}\n"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,  # a block that prompts fails instead of waiting
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block.describe()} exited with {result.returncode}\n--- block as run:\n{text}"
        f"\n--- stdout:\n{result.stdout[-4000:]}\n--- stderr:\n{result.stderr[-4000:]}"
    )


def excluded(block: Block) -> bool:
    return any(marker in block.text for marker in EXCLUDED)


def test_every_exclusion_names_exactly_one_block() -> None:
    blocks = readme_blocks()
    for marker, reason in EXCLUDED.items():
        matching = [block.number for block in blocks if marker in block.text]
        assert len(matching) == 1, f"{marker!r} ({reason}) matches blocks {matching}"


def test_readme_blocks_run_as_written_against_fader_serve_demo(tmp_path: Path) -> None:
    blocks = [block for block in readme_blocks() if not excluded(block)]
    assert {block.language for block in blocks} == {"sh", "python"}
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    root = clone_root(tmp_path, token)
    state = tmp_path / "exported.sh"
    state.write_text("")
    with fader_serve_demo(root, token) as url:
        env = shell_environment(tmp_path, url)
        for block in blocks:
            run(block, root, env, state, url)
