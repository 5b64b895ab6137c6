"""`fader tokens list|create|revoke`: API tokens, SDK (server) keys and client keys.

A token's secret exists in exactly one response, its creation; `create` prints it once, alone
on standard output (so ``TOKEN=$(fader tokens create ...)`` works), with what it is for on
standard error. Nothing else in the CLI ever prints a token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer

from fader_server.cli.admin import Json, Token, Url, admin_command, connect
from fader_server.cli.client import api_path
from fader_server.cli.output import cell, note, print_json, print_table

app = typer.Typer(help="API tokens, SDK (server) keys and client keys.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TokenKind(StrEnum):
    SERVER = "server"
    CLIENT = "client"
    ADMIN = "admin"
    USER = "user"


# No FADER_PROJECT here: a token's scope should be stated, never inherited from the shell.
ProjectScope = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project the token belongs to (omit: instance-wide)."),
]
TOKEN_COLUMNS = [
    "ID",
    "KIND",
    "NAME",
    "PROJECT",
    "ENVIRONMENT",
    "CREATED",
    "EXPIRES",
    "REVOKED",
    "CREATED BY",
    "LAST USED",
]


def _row(token: dict[str, Any]) -> list[Any]:
    return [
        token["id"],
        token["kind"],
        token["name"],
        token["project"],
        token["environment"],
        token["created_at"],
        token["expires_at"],
        token["revoked_at"],
        token["created_by"],
        token.get("last_used_at"),
    ]


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w`` → a positive duration."""
    match = _DURATION.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 90m, 12h, 30d or 2w", param_hint="--expires-in"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _default_name(kind: TokenKind, project: str | None, environment: str | None) -> str:
    scope = "/".join(part for part in (project, environment) if part) or "instance"
    return f"{kind.value} token for {scope}"


@admin_command(app, "list")
def list_tokens(
    project: ProjectScope = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List a project's tokens, or (instance administrators) the instance-wide ones."""
    with connect(url, token) as api:
        tokens = api.get(api_path("tokens"), {"project": project} if project else None).body
    if as_json:
        print_json(tokens)
    else:
        print_table(TOKEN_COLUMNS, (_row(t) for t in tokens))


@admin_command(app, "create")
def create_token(
    kind: Annotated[TokenKind, typer.Option(help="server: SDK key; client: browser/mobile key.")],
    project: ProjectScope = None,
    environment: Annotated[
        str | None, typer.Option("--env", "-e", help="Environment (server and client keys).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            help="Lifetime such as 90m, 12h, 30d, 2w (default: none; 90d, and 365d at most, "
            "for personal tokens and for admin tokens made with a personal token)."
        ),
    ] = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a token and print its secret, once (`--json`: an object with a `token` field)."""
    expires_at = None
    if expires_in is not None:
        expires_at = (datetime.now(UTC) + parse_duration(expires_in)).isoformat()
    body = {
        "kind": kind.value,
        "name": name or _default_name(kind, project, environment),
        "project": project,
        "environment": environment,
        "expires_at": expires_at,
    }
    with connect(url, token) as api:
        created = api.post(api_path("tokens"), body).body
    if as_json:
        print_json(created)
        return
    scope = "/".join(p for p in (created["project"], created["environment"]) if p) or "instance"
    expiry = f", expires {cell(created['expires_at'])}" if created["expires_at"] else ""
    note(
        f"created {created['kind']} token {created['id']} ({created['name']!r}) for {scope}"
        f"{expiry}. This is the only time it is shown; store it now:"
    )
    typer.echo(created["token"])


@admin_command(app, "revoke")
def revoke_token(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id (see `tokens list`).")],
    url: Url = None,
    token: Token = None,
) -> None:
    """Revoke a token: it stops working at once."""
    with connect(url, token) as api:
        api.delete(api_path("tokens", token_id))
    note(f"revoked token {token_id}")
