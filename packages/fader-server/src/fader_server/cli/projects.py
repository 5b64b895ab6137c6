"""`fader projects list|create|show`: the tenants of a Fader server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import Comment, Json, Limit, Token, Url, admin_command, connect
from fader_server.cli.client import api_path
from fader_server.cli.environments import ENVIRONMENT_COLUMNS, environment_row
from fader_server.cli.output import note, print_fields, print_heading, print_json, print_table

app = typer.Typer(
    help="Projects: each has its own environments, flags and segments.", no_args_is_help=True
)

Key = Annotated[str, typer.Argument(help="Project key.", show_default=False)]


def _row(project: dict[str, Any]) -> list[Any]:
    return [project["key"], project["name"], project["created_at"]]


@admin_command(app, "list")
def list_projects(
    limit: Limit = None, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """List the projects you can see."""
    with connect(url, token) as api:
        projects = list(api.items(api_path("projects"), limit=limit))
    if as_json:
        print_json(projects)
    else:
        print_table(["KEY", "NAME", "CREATED"], (_row(p) for p in projects))


@admin_command(app, "create")
def create_project(
    key: Key,
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a project with development, staging and (protected) production environments."""
    body = {"key": key, "name": name or key, "comment": comment}
    with connect(url, token) as api:
        project = api.post(api_path("projects"), body).body
    if as_json:
        print_json(project)
    else:
        note(f"created project {project['key']}")
        print_table(["KEY", "NAME", "CREATED"], [_row(project)])


@admin_command(app, "show")
def show_project(key: Key, as_json: Json = False, url: Url = None, token: Token = None) -> None:
    """Show a project and its environments (`--json`: the project with an `environments` list)."""
    with connect(url, token) as api:
        project = api.get(api_path("projects", key)).body
        environments = api.get(api_path("projects", key, "environments")).body
    if as_json:
        print_json({**project, "environments": environments})
        return
    print_fields({"key": project["key"], "name": project["name"], "created": project["created_at"]})
    print_heading("Environments")
    print_table(ENVIRONMENT_COLUMNS, (environment_row(e) for e in environments))
