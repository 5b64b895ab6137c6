"""`fader` imports what a command needs when it needs it (bench/cli/startup.py measures it).

No timing is asserted (the machine is shared): what is checked is the set of modules a fresh
interpreter holds after `fader --help`, `fader --version` and the help of a command, as the
Makefile checks the engine alone, and that the root group's one-line help of each command,
written beside its name so listing it imports nothing, is that command's own.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fader_server.__about__ import __version__
from fader_server.cli.lazy import load
from fader_server.cli.main import FaderGroup, app

SERVER_STACK = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "uvicorn",
    "httpx",
    "structlog",
    "jinja2",
    "grpc",
    "prometheus_client",
}
"""What `fader --help` must not import: the server's and the admin client's dependencies
(pydantic is not here: typer itself imports it to convert option values)."""

_PROBE = """
import json, sys
from fader_server.cli.main import main
sys.argv = ["fader", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def imported_by(*args: str) -> tuple[str, set[str]]:
    """Run `fader ARGS` in a fresh interpreter: its standard output and the top-level modules
    it had imported when it finished."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modules = done.stderr.rsplit("MODULES ", 1)[1]
    return done.stdout, set(json.loads(modules))


def test_help_lists_every_command_and_imports_no_command_module() -> None:
    out, modules = imported_by("--help")
    for entry in FaderGroup.lazy_commands:
        assert entry.name in out
    assert not modules & (SERVER_STACK | {"rich", "fader_engine"}), modules & SERVER_STACK
    assert "Commands:" in out


def test_version_prints_the_installed_version_and_imports_nothing_else() -> None:
    out, modules = imported_by("--version")
    assert out.strip() == f"fader {__version__}"
    assert __version__ == importlib.metadata.version("fader-server")
    assert not modules & (SERVER_STACK | {"rich", "fader_engine"})


@pytest.mark.parametrize(
    "command", [("serve", "--help"), ("flags", "list", "--help"), ("login", "--help")]
)
def test_a_commands_help_imports_neither_the_server_nor_httpx(command: tuple[str, ...]) -> None:
    out, modules = imported_by(*command)
    assert "Usage: fader " + command[0] in " ".join(out.split())
    assert not modules & SERVER_STACK, modules & SERVER_STACK


def test_serve_help_shows_defaults_and_environment_variables() -> None:
    out = " ".join(CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).stdout.split())
    for variable in ("FADER_HOST", "FADER_PORT", "FADER_DATA_DIR", "FADER_DATABASE_URL"):
        assert variable in out
    assert "127.0.0.1" in out
    assert "8400" in out


@pytest.mark.parametrize("entry", FaderGroup.lazy_commands, ids=lambda e: e.name)
def test_the_listed_help_of_each_command_is_its_own(entry: object) -> None:
    from fader_server.cli.lazy import LazyCommand

    assert isinstance(entry, LazyCommand)
    command = load(entry)
    assert command.name == entry.name
    assert (command.help or "").strip().splitlines()[0] == entry.help


def test_a_mistyped_command_is_refused_with_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["projcts", "list"])
    assert result.exit_code == 2
    assert "No such command" in result.stderr
    assert "projects" in result.stderr
