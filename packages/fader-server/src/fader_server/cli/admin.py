"""What every admin command (`fader projects|environments|flags|segments|tokens`) shares.

The connection options are declared on each command rather than on a group callback, so they
can go anywhere on the line (`fader flags list -p web --url ...`) and come from the environment
(`FADER_URL`, `FADER_TOKEN`, `FADER_PROJECT`) as in other flag-service CLIs, or, for the server
and token, from `fader login` (:mod:`fader_server.cli.logins`). The token's value is never
shown: not in `--help`, not in messages.

Exit status: 0 on success; 1 when the server refuses the request or cannot be reached (the
problem's detail is printed); 2 for usage errors, which typer reports, and for local input that
cannot be used (an unreadable `--file`, a bad `--expires-in`).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from fader_server.cli import logins
from fader_server.cli.client import AdminApi, AdminApiError
from fader_server.cli.eval import EXIT_INVALID, InputError
from fader_server.cli.output import describe_error

EXIT_FAILED = 1

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="FADER_URL",
        help="Fader server (default: the last `fader login`'s, else http://127.0.0.1:8400).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="FADER_TOKEN",
        help="Admin or user API token (default: the one `fader login` kept for the server).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Project = Annotated[
    str, typer.Option("--project", "-p", envvar="FADER_PROJECT", help="Project key.")
]
Environment = Annotated[str, typer.Option("--env", "-e", help="Environment key.")]
Comment = Annotated[
    str | None, typer.Option("--comment", "-m", help="Why: recorded in the audit log.")
]
Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most this many items (default: all).")
]
JsonFile = Annotated[
    str | None,
    typer.Option("--file", "-f", help="JSON file with the request body ('-' for stdin)."),
]

P = ParamSpec("P")
R = TypeVar("R")


def connect(url: str | None, token: str | None) -> AdminApi:
    """A client of the server the flags, the environment or `fader login` name (in that order,
    :mod:`fader_server.cli.logins`), with the token given or kept for that server."""
    return AdminApi(*logins.resolve(url, token))


def reported(function: Callable[P, R]) -> Callable[P, R]:
    """Turn API failures and unusable local input into an error message on stderr and an exit
    status, in one place instead of in every command."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except AdminApiError as exc:
            for line in describe_error(exc):
                typer.echo(line, err=True)
            raise typer.Exit(EXIT_FAILED) from exc
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from exc

    return run


def admin_command(app: typer.Typer, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register `name` on `app` as a :func:`reported` command."""

    def register(function: Callable[P, R]) -> Callable[P, R]:
        app.command(name)(reported(function))
        return function

    return register


def read_body(source: str, what: str) -> dict[str, Any]:
    """A JSON object from a file or, for ``-``, from standard input."""
    where = "standard input" if source == "-" else repr(source)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} {where}: {exc.strerror}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} {where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(value, dict):
        raise InputError(f"{what} {where} must be a JSON object")
    return value


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    """`body` minus read-only fields, so what `show --json` printed can be sent back."""
    return {k: v for k, v in body.items() if k not in fields}
