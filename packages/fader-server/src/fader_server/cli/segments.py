"""`fader segments list|show|create|delete`: reusable audiences, shared by a project's flags."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import (
    Comment,
    Json,
    JsonFile,
    Limit,
    Project,
    Token,
    Url,
    admin_command,
    connect,
    read_body,
    without,
)
from fader_server.cli.client import api_path
from fader_server.cli.output import note, print_fields, print_json, print_table

app = typer.Typer(
    help="Segments: reusable audiences referenced by flag rules (in_segment).", no_args_is_help=True
)

Key = Annotated[str, typer.Argument(help="Segment key.", show_default=False)]
SEGMENT_COLUMNS = ["KEY", "NAME", "INCLUDED", "EXCLUDED", "RULES", "VERSION", "UPDATED"]


def _row(segment: dict[str, Any]) -> list[Any]:
    return [
        segment["key"],
        segment.get("name"),
        len(segment["included"]),
        len(segment["excluded"]),
        len(segment["rules"]),
        segment["version"],
        segment["updated_at"],
    ]


@admin_command(app, "list")
def list_segments(
    project: Project,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List a project's segments."""
    with connect(url, token) as api:
        segments = list(api.items(api_path("projects", project, "segments"), limit=limit))
    if as_json:
        print_json(segments)
    else:
        print_table(SEGMENT_COLUMNS, (_row(s) for s in segments))


@admin_command(app, "show")
def show_segment(
    key: Key, project: Project, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """Show a segment: who is included or excluded by targeting key, and its rules."""
    with connect(url, token) as api:
        segment = api.get(api_path("projects", project, "segments", key)).body
    if as_json:
        print_json(segment)
        return
    print_fields(
        {
            "key": segment["key"],
            "name": segment.get("name"),
            "description": segment.get("description"),
            "included": segment["included"],
            "excluded": segment["excluded"],
            "rules": segment["rules"],
            "version": segment["version"],
            "updated": segment["updated_at"],
        }
    )


@admin_command(app, "create")
def create_segment(
    key: Key,
    project: Project,
    file: JsonFile = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    description: Annotated[str | None, typer.Option(help="Who this audience is.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Targeting key always in; repeatable.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Targeting key never in; repeatable.")
    ] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a segment from options and/or a JSON `--file` (rules go in the file)."""
    body = without(read_body(file, "segment file"), "version", "updated_at") if file else {}
    given = {"name": name, "description": description, "included": include, "excluded": exclude}
    body.update({field: value for field, value in given.items() if value is not None})
    body.update(key=key, comment=comment)
    with connect(url, token) as api:
        segment = api.post(api_path("projects", project, "segments"), body).body
    if as_json:
        print_json(segment)
    else:
        note(f"created segment {segment['key']} in {project}")
        print_table(SEGMENT_COLUMNS, [_row(segment)])


@admin_command(app, "delete")
def delete_segment(
    key: Key,
    project: Project,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    comment: Comment = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Delete a segment (refused while a flag's rule uses it)."""
    if not yes:
        typer.confirm(f"Delete segment {key} of {project}?", abort=True)
    path = api_path("projects", project, "segments", key)
    with connect(url, token) as api:
        current = api.get(path)
        params = {"comment": comment} if comment else None
        api.delete(path, if_match=current.body["version"], params=params)
    note(f"deleted segment {key} from {project}")
