"""`fader login` and `fader logout`: keep a token for a server so commands need no FADER_TOKEN.

`fader login` asks the server for a personal token (username and password, as the console
does; the token expires after 12 hours; or, with ``--sso <provider>``, through the browser and
an OpenID provider, :mod:`fader_server.cli.sso_login`) or, with ``--token-stdin``, checks and
keeps a token made elsewhere (``fader tokens create --kind user``). A secret is never an
argument, so it never lands in shell history or in ``ps``: the password is asked for without
echo, or read from standard input with ``--password-stdin`` (scripts). Where it is kept, with
which file modes, and how commands choose between ``--token``, ``FADER_TOKEN`` and a kept
login: :mod:`fader_server.cli.logins`.

`fader logout` forgets the kept token and, when `fader login` created it, revokes it on the
server first, so a copied file is worth nothing after logging out.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from fader_server.cli import logins, sso_login
from fader_server.cli.admin import EXIT_FAILED, Url, reported
from fader_server.cli.client import AdminApi, AdminApiError, ProblemError, api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import describe_error, note

MAX_SECRET_CHARS = 4096
"""Longer than any password the server accepts (200) or token it issues; stdin is bounded."""


def _read_secret_line(what: str) -> str:
    """The first line of standard input, for a secret piped in (``--password-stdin``)."""
    line = sys.stdin.readline(MAX_SECRET_CHARS + 1).rstrip("\r\n")
    if not line:
        raise InputError(f"no {what} on standard input")
    if len(line) > MAX_SECRET_CHARS:
        raise InputError(f"the {what} on standard input is longer than {MAX_SECRET_CHARS} chars")
    return line


@reported
def login_command(
    url: Url = None,
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", help="Log in as this user (asked for when omitted)."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
    token_stdin: Annotated[
        bool,
        typer.Option(
            "--token-stdin",
            help="Keep an existing admin or user token read from standard input instead.",
        ),
    ] = False,
    sso: Annotated[
        str | None,
        typer.Option(
            "--sso",
            metavar="PROVIDER",
            help="Sign in with this single sign-on provider, in the browser (docs/sso.md).",
        ),
    ] = None,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="With --sso: print the address instead of opening it."),
    ] = False,
) -> None:
    """Log in to a Fader server and keep its token for the next commands."""
    if token_stdin and (username is not None or password_stdin):
        raise InputError("--token-stdin takes no --username or --password-stdin")
    if sso is not None and (token_stdin or username is not None or password_stdin):
        raise InputError("--sso takes no --username, --password-stdin or --token-stdin")
    if no_browser and sso is None:
        raise InputError("--no-browser goes with --sso")
    kept = logins.read_logins()
    server = logins.chosen_server(url, kept)
    if sso is not None:
        with _refusal_explained(server):
            login = sso_login.sign_in(server, sso, open_browser=not no_browser)
        who = f"with {sso}" + (f" (until {login.expires_at})" if login.expires_at else "")
    elif token_stdin:
        secret = _read_secret_line("token")
        with AdminApi(server, secret) as api, _refusal_explained(server):
            api.get(api_path("projects"), {"limit": 1})  # refused (401) if it is no API token
        login = logins.Login(secret)
        who = "with the given token"
    else:
        name = username or typer.prompt("Username")
        password = (
            _read_secret_line("password")
            if password_stdin
            else typer.prompt("Password", hide_input=True)
        )
        with AdminApi(server, None) as api, _refusal_explained(server):
            issued = api.post(
                api_path("auth", "login"), {"username": name, "password": password}
            ).body
        login = logins.Login(issued["token"], name, issued["id"], issued.get("expires_at"))
        who = f"as {name}" + (f" (until {login.expires_at})" if login.expires_at else "")
    path = logins.write_logins(logins.Logins({**kept.servers, server: login}, current=server))
    note(f"Logged in to {server} {who}; the token is kept in {path}.")


@reported
def logout_command(url: Url = None) -> None:
    """Forget the token kept for a server (and revoke it there, if `fader login` created it)."""
    kept = logins.read_logins()
    server = logins.chosen_server(url, kept)
    login = kept.servers.get(server)
    if login is None:
        note(f"Not logged in to {server}.")
        return
    if login.token_id is not None:
        try:
            with AdminApi(server, login.token) as api:
                api.delete(api_path("tokens", login.token_id))
        except ProblemError as exc:
            if exc.status != 401:  # 401: already expired or revoked, nothing left to revoke
                _warn(exc)
        except AdminApiError as exc:
            _warn(exc)
    others = {u: entry for u, entry in kept.servers.items() if u != server}
    logins.write_logins(
        logins.Logins(others, current=None if kept.current == server else kept.current)
    )
    note(f"Logged out of {server}.")


@contextlib.contextmanager
def _refusal_explained(server: str) -> Iterator[None]:
    """A refused login is the answer to this command, not a missing token: say just that
    (the generic advice for 401, "log in with `fader login`", would send the user in a loop)."""
    try:
        yield
    except ProblemError as exc:
        if exc.status != 401:
            raise
        typer.echo(f"error: {server} refused the login: {exc.detail}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc


def _warn(exc: AdminApiError) -> None:
    """The token is forgotten anyway; say that the server may still accept it."""
    for line in describe_error(exc):
        note(line.replace("error:", "warning: could not revoke the token:", 1))
    note("  It is forgotten here; revoke it with `fader tokens revoke` if it still works.")
