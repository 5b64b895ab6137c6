"""`fader environments list|create`: the stages a project's flags are configured for."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import (
    Comment,
    Json,
    Project,
    Token,
    Url,
    admin_command,
    connect,
)
from fader_server.cli.client import DEFAULT_URL, api_path
from fader_server.cli.output import note, print_json, print_table

app = typer.Typer(
    help="Environments of a project (development, staging, production...).", no_args_is_help=True
)

ENVIRONMENT_COLUMNS = ["KEY", "NAME", "PROTECTED", "VERSION", "UPDATED"]


def environment_row(env: dict[str, Any]) -> list[Any]:
    return [env["key"], env["name"], env["protected"], env["version"], env["updated_at"]]


@admin_command(app, "list")
def list_environments(
    project: Project, as_json: Json = False, url: Url = DEFAULT_URL, token: Token = None
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
    url: Url = DEFAULT_URL,
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
