"""`fader environments list|create|policy|document|compare|promote`: the stages a project's
flags are configured for (`policy`: who must approve changes there, docs/change-control.md;
`compare` and `promote`: :mod:`fader_server.cli.promotion`).

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

from fader_server.cli import promotion
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
from fader_server.cli.output import note, print_fields, print_json, print_table

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


@admin_command(app, "policy")
def change_request_policy(
    key: Annotated[str, typer.Argument(help="Environment key.", show_default=False)],
    project: Project,
    require: Annotated[
        bool | None,
        typer.Option(
            "--require/--no-require",
            help="Changes to what it serves must be approved change requests (protects it).",
        ),
    ] = None,
    approvals: Annotated[
        int | None, typer.Option("--approvals", min=1, max=5, help="Approvals needed (1-5).")
    ] = None,
    approver_roles: Annotated[
        list[str] | None,
        typer.Option("--approver-role", help="A role that may approve (repeat): admin, editor."),
    ] = None,
    emergency_roles: Annotated[
        list[str] | None,
        typer.Option("--emergency-role", help="A role that may still turn flags off directly."),
    ] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Show or set an environment's change-request policy (docs/change-control.md)."""
    path = api_path("projects", project, "environments", key)
    with connect(url, token) as api:
        current = api.get(path)
        env = current.body
        policy = dict(env["change_requests"])
        given = {
            "required": require,
            "approvals": approvals,
            "approver_roles": approver_roles,
            "emergency_roles": emergency_roles,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        if changes:
            policy.update(changes)
            body = {
                "name": env["name"],
                "protected": env["protected"] or bool(policy["required"]),
                "change_requests": policy,
                "comment": comment,
            }
            assert current.version is not None
            env = api.put(path, body, if_match=current.version).body
    if as_json:
        print_json(env["change_requests"])
    else:
        if changes:
            note(f"updated the change-request policy of {project}/{key}")
        print_fields(env["change_requests"])


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


promotion.register(app)  # `compare` and `promote`
