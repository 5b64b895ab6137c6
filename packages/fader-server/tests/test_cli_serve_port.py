"""`fader serve` on a port that is taken, or with a setting that does not parse (or is out of
range), stops before it creates anything, with one line saying why.

Before, it created the database and the first admin (printing a password for a server that
never ran), seeded the demo, and only then failed to bind. Now the port is checked first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SERVE = "from fader_server.cli.main import main; main()"


def test_a_taken_port_stops_serve_before_the_database_or_admin_exist(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "FADER_PORT": str(port)}  # from the environment, as `make run` may
        env.pop("FADER_DATABASE_URL", None)
        done = subprocess.run(
            [sys.executable, "-c", SERVE, "serve", "--demo", "--data-dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in done.stderr
    assert "--port" in done.stderr
    assert "password" not in done.stdout + done.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "FADER_DATABASE_POOLER",
            "statement",
            "FADER_DATABASE_POOLER must be none, session or transaction, not 'statement'",
        ),
        ("FADER_USAGE_MINUTES_DAYS", "0", "FADER_USAGE_MINUTES_DAYS must be at least 1, not 0"),
        ("FADER_USAGE_HOURS_DAYS", "-3", "FADER_USAGE_HOURS_DAYS must be at least 1, not -3"),
        (
            "FADER_MAX_BODY_BYTES",
            "1MB",
            "FADER_MAX_BODY_BYTES must be a whole number, not '1MB'",
        ),
    ],
)
def test_a_setting_that_does_not_parse_is_one_line_not_a_traceback(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {**os.environ, variable: value}
    env.pop("FADER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SERVE, "serve", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "d").exists()
