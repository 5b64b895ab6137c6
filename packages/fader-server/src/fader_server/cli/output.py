"""What the admin commands print: tables for people, JSON for scripts, errors on stderr.

Tables go to standard output through rich; when standard output is not a terminal (a pipe, a
file, a test) they are rendered without a width limit, so `grep` and `awk` see whole keys
rather than wrapped or truncated ones. JSON is exactly the API's objects (lists of items for
collections), so a script can rely on the API reference. Messages for people and errors go to
standard error, keeping standard output clean for the data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from fader_server.cli.client import AdminApiError, ProblemError, ServerUnreachableError

_UNLIMITED_WIDTH = 10_000


def _console() -> Console:
    """A console on the *current* stdout (test runners swap it), unbounded when not a tty."""
    stream = sys.stdout
    width = None if stream.isatty() else _UNLIMITED_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    """A message for the person at the terminal, never part of the data on stdout."""
    typer.echo(message, err=True)


def cell(value: Any) -> str:
    """One value as table text: timestamps to the second in UTC, lists joined, JSON inline."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _timestamp(value) or value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _timestamp(text: str) -> str | None:
    """The API's ISO 8601 timestamps, shortened; None for any other string."""
    if len(text) < 19 or text[4:5] != "-" or text[10:11] != "T":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    suffix = "Z" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix


def state(enabled: bool) -> str:
    """A flag configuration's state in words (never by colour alone)."""
    return "ON" if enabled else "OFF"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*(cell(v) for v in row))
        count += 1
    if count == 0:
        note("(none)")
        return
    _console().print(table)


def print_fields(fields: Mapping[str, Any]) -> None:
    """One entity as a two-column list of its fields."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in fields.items():
        table.add_row(name, cell(value))
    _console().print(table)


def print_heading(text: str) -> None:
    _console().print()
    _console().print(text, style="bold", markup=False)


def describe_error(exc: AdminApiError) -> list[str]:
    """The lines to show for a failed call: the problem's detail, each field error with its
    path, and what to do when the cause is the connection or the token."""
    if isinstance(exc, ServerUnreachableError):
        return [
            f"error: {exc}",
            "  Is the server running there? Set FADER_URL or pass --url to use another one.",
        ]
    if not isinstance(exc, ProblemError):
        return [f"error: {exc}"]
    lines = [f"error: {exc.detail}"]
    lines.extend(f"  {e.path}: {e.message}" for e in exc.errors)
    if exc.status == 401:
        if exc.token_sent:
            lines.append(
                f"  The server at {exc.url} refused the API token. Set FADER_TOKEN (or pass "
                "--token) to a valid admin or user token, or log in again with "
                f"`fader login --url {exc.url}` (an expired or revoked login)."
            )
        else:
            lines.append(
                "  No API token was given. Set FADER_TOKEN (or pass --token) to an admin or "
                f"user token, or log in with `fader login --url {exc.url}` (it asks for a "
                "username and password); `fader serve` accepts FADER_ADMIN_TOKEN for the "
                "first one."
            )
    elif exc.category == "retryable":
        lines.append("  This is temporary; try again in a moment.")
    return lines
