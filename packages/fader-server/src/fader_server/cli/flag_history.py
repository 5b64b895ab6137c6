"""`fader flags history|versions|revert`: what happened to a flag, and undoing it.

History is the project's audit log (who, when, what changed, why) filtered to one flag;
versions are the stored snapshots `revert` restores. A revert is always a new version, so the
audit log shows the undo too. Registered on the `flags` group by :mod:`fader_server.cli.flags`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fader_server.cli import configs
from fader_server.cli.admin import Comment, Json, Project, Token, Url, connect
from fader_server.cli.client import MAX_PAGE, api_path
from fader_server.cli.output import note, print_fields, print_json, print_table

Key = Annotated[str, typer.Argument(help="Flag key.", show_default=False)]


def history(
    key: Key,
    project: Project,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 20,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Audit log of a flag, newest first.

    Covers the definition and the configuration in every environment.
    """
    with connect(url, token) as api:
        path = api_path("projects", project, "flags", key, "history")
        entries = list(api.items(path, limit=limit))
    if as_json:
        print_json(entries)
        return
    print_table(
        ["ID", "AT", "ACTOR", "ACTION", "WHAT", "ENVIRONMENT", "VERSION", "CHANGED", "COMMENT"],
        (
            [
                e["id"],
                e["at"],
                e["actor"],
                e["action"],
                e["entity_type"],
                e["environment"],
                e["version"],
                [d.get("path", "") for d in e["diff"]],
                e["comment"],
            ]
            for e in entries
        ),
    )


def versions(
    key: Key,
    project: Project,
    environment: Annotated[
        str | None,
        typer.Option("--env", "-e", help="The configuration's versions in this environment."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="At most this many.")] = 20,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Stored versions of a flag, newest first: what `revert --to` can restore.

    The definition's versions, or with `--env` those of the configuration in that environment.
    """
    if environment is None:
        path = api_path("projects", project, "flags", key, "versions")
    else:
        path = api_path("projects", project, "environments", environment, "flags", key, "versions")
    with connect(url, token) as api:
        versions = api.get(path, {"limit": limit}).body
    if as_json:
        print_json(versions)
        return
    print_table(
        ["VERSION", "CREATED", "ACTOR", "DELETED", "COMMENT"],
        ([v["version"], v["created_at"], v["actor"], v["deleted"], v["comment"]] for v in versions),
    )


def revert(
    key: Key,
    project: Project,
    to: Annotated[int, typer.Option("--to", min=1, help="Version to restore.")],
    environment: Annotated[
        str | None,
        typer.Option("--env", "-e", help="Revert the configuration in this environment."),
    ] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Restore an earlier version of a flag as a new version (history only grows).

    The definition, or with `--env` the configuration in that environment.
    """
    if environment is None:
        path = api_path("projects", project, "flags", key, "revert")
    else:
        path = api_path("projects", project, "environments", environment, "flags", key, "revert")
    with connect(url, token) as api:
        result = api.post(path, {"version": to, "comment": comment}).body
    if as_json:
        print_json(result)
        return
    where = f" in {environment}" if environment else ""
    note(f"reverted {key}{where} to version {to}")
    if environment is None:
        print_fields({f: result[f] for f in ("key", "name", "type", "variants", "version")})
    else:
        configs.print_config(result)
