"""`fader environments list|create|document`: the stages a project's flags are configured for.

`document` prints an environment's whole flag document (docs/flag-format.md), the one its SDKs
evaluate, which `fader eval` reads: ``fader environments document -p demo -e production >
production.json`` then ``fader eval production.json --flag new-checkout --context ...`` tries a
context against production's flags without touching the server again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fader_server.cli.admin import (
    Comment,
    Environment,
    Json,
    Project,
    Token,
    Url,
    admin_command,
    connect,
)
from fader_server.cli.client import api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import note, print_json, print_table

app = typer.Typer(
    help="Environments of a project (development, staging, production...).", no_args_is_help=True
)

ENVIRONMENT_COLUMNS = ["KEY", "NAME", "PROTECTED", "VERSION", "UPDATED"]


def environment_row(env: dict[str, Any]) -> list[Any]:
    return [env["key"], env["name"], env["protected"], env["version"], env["updated_at"]]


@admin_command(app, "list")
def list_environments(
    project: Project, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """List a project's environments."""
    with connect(url, token) as api:
        environments = api.get(api_path("projects", project, "environments")).body
    if as_json:
        print_json(environments)
    else:
        print_table(ENVIRONMENT_COLUMNS, (environment_row(e) for e in environments))


@admin_command(app, "create")
def create_environment(
    key: Annotated[str, typer.Argument(help="Environment key.", show_default=False)],
    project: Project,
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    protected: Annotated[
        bool, typer.Option("--protected", help="Changing flags here needs the project admin role.")
    ] = False,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create an environment in a project."""
    body = {"key": key, "name": name or key, "protected": protected, "comment": comment}
    with connect(url, token) as api:
        env = api.post(api_path("projects", project, "environments"), body).body
    if as_json:
        print_json(env)
    else:
        note(f"created environment {env['key']} in {project}")
        print_table(ENVIRONMENT_COLUMNS, [environment_row(env)])


@admin_command(app, "document")
def environment_document(
    project: Project,
    environment: Environment,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Print an environment's flag document, as its SDKs evaluate it (`fader eval` reads it)."""
    with connect(url, token) as api:
        document = api.get(api_path("projects", project, "environments", environment, "document"))
    text = json.dumps(document.body, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {str(output)!r}: {exc.strerror}") from exc
    note(f"wrote the document of {project}/{environment} to {output}")
