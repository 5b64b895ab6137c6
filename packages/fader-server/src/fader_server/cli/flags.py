"""`fader flags ...`: flag definitions (project-wide) and their history.

Per-environment configurations and the kill switch (`config get|set`, `toggle`) live in
:mod:`fader_server.cli.configs`; this module registers them so that they read as one group.
Writes of a definition that already exists send ``If-Match`` with the version just read, or
with the `version` of a `--file` printed by `show --json`, so nobody's change is overwritten.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from fader_server.cli import configs, flag_history, usage
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
    reported,
    without,
)
from fader_server.cli.client import api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import (
    note,
    print_fields,
    print_heading,
    print_json,
    print_table,
    state,
)

app = typer.Typer(
    help="Flags: definitions, per-environment configuration, kill switch, history, usage.",
    no_args_is_help=True,
)

# what `show --json` adds to a definition; dropped when such a file is sent back
_READ_ONLY = ("key", "version", "created_at", "updated_at", "environments")


class FlagType(StrEnum):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    OBJECT = "object"


class FlagKind(StrEnum):
    RELEASE = "release"
    EXPERIMENT = "experiment"
    OPS = "ops"
    PERMISSION = "permission"


Key = Annotated[str, typer.Argument(help="Flag key.", show_default=False)]
Name = Annotated[str | None, typer.Option(help="Display name.")]
Description = Annotated[str | None, typer.Option(help="What the flag is for.")]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="A tag; repeat for several (replaces all).")
]
Kind = Annotated[FlagKind | None, typer.Option(help="Purpose of the flag.")]
Type = Annotated[FlagType | None, typer.Option("--type", help="Type of the variants' values.")]
Variants = Annotated[
    list[str] | None,
    typer.Option(
        "--variant",
        help="NAME=VALUE, VALUE read as JSON if it parses, else as a string; repeat for each "
        "variant (replaces all).",
    ),
]
OwnerTeam = Annotated[str | None, typer.Option(help="Team that owns the flag.")]
Lifetime = Annotated[
    int | None, typer.Option("--lifetime-days", min=1, help="Expected lifetime, in days.")
]
ClientSide = Annotated[
    bool | None,
    typer.Option(
        "--client-side/--server-only",
        help="Whether client keys (browsers, mobile apps, through OFREP) may evaluate it.",
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

FLAG_COLUMNS = ["KEY", "NAME", "TYPE", "KIND", "TAGS", "OWNER", "VERSION", "UPDATED"]


def _flag_row(flag: dict[str, Any]) -> list[Any]:
    return [
        flag["key"],
        flag["name"],
        flag["type"],
        flag["kind"],
        flag["tags"],
        flag.get("owner_team"),
        flag["version"],
        flag["updated_at"],
    ]


def parse_variants(specs: list[str], flag_type: str) -> dict[str, Any]:
    """``NAME=VALUE`` options → variants; VALUE is taken as is for a string flag and read as
    JSON otherwise (``on=true``, ``size=20``, ``theme={"dark": true}``)."""
    variants: dict[str, Any] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not name:
            raise InputError(f"--variant {spec!r} must look like NAME=VALUE, e.g. on=true")
        if flag_type == FlagType.STRING:
            variants[name] = text
            continue
        try:
            variants[name] = json.loads(text)
        except json.JSONDecodeError:
            raise InputError(
                f"--variant {spec!r}: the value of a {flag_type} flag's variant must be JSON "
                '(true, 10, {"a": 1}...)'
            ) from None
    return variants


def definition(body: dict[str, Any]) -> dict[str, Any]:
    """A definition as the API accepts it: read-only fields dropped, and the deprecated `owner`
    (which every response still echoes) folded into `owner_team` instead of being sent."""
    fields = without(body, *_READ_ONLY)
    owner = fields.pop("owner", None)
    if owner is not None and fields.get("owner_team") is None:
        fields["owner_team"] = owner
    return fields


def _fields(
    name: str | None,
    description: str | None,
    flag_type: FlagType | None,
    kind: FlagKind | None,
    tags: list[str] | None,
    owner_team: str | None,
    lifetime_days: int | None,
    client_side: bool | None = None,
) -> dict[str, Any]:
    """The definition fields given as options (variants need the type, so come later)."""
    given = {
        "name": name,
        "description": description,
        "type": flag_type.value if flag_type else None,
        "kind": kind.value if kind else None,
        "tags": tags,
        "owner_team": owner_team,
        "expected_lifetime_days": lifetime_days,
        "client_side": client_side,
    }
    return {field: value for field, value in given.items() if value is not None}


def _describe(flag: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": flag["key"],
        "name": flag["name"],
        "description": flag["description"],
        "type": flag["type"],
        "kind": flag["kind"],
        "variants": flag["variants"],
        "tags": flag["tags"],
        "owner team": flag.get("owner_team"),
        "lifetime (days)": flag.get("expected_lifetime_days"),
        "version": flag["version"],
        "created": flag["created_at"],
        "updated": flag["updated_at"],
    }


@admin_command(app, "list")
def list_flags(
    project: Project,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Full-text search: key, name, description, tags."),
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List a project's flags, every page (or the first `--limit`)."""
    params = {"q": query} if query else {}
    with connect(url, token) as api:
        flags = list(api.items(api_path("projects", project, "flags"), params, limit=limit))
    if as_json:
        print_json(flags)
    else:
        print_table(FLAG_COLUMNS, (_flag_row(f) for f in flags))


@admin_command(app, "show")
def show_flag(
    key: Key, project: Project, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """Show a flag's definition and its state in every environment.

    `--json`: the flag as the API returns it plus `environments`, an object mapping each
    environment key to its configuration.
    """
    with connect(url, token) as api:
        flag = api.get(api_path("projects", project, "flags", key)).body
        environments = api.get(api_path("projects", project, "environments")).body
        config_path = ("projects", project, "environments")
        found = {
            env["key"]: api.get(api_path(*config_path, env["key"], "flags", key)).body
            for env in environments
        }
    if as_json:
        print_json({**flag, "environments": found})
        return
    print_fields(_describe(flag))
    print_heading("Environments")
    print_table(
        ["ENVIRONMENT", "STATE", "DEFAULT", "RULES", "VERSION"],
        (
            [
                env,
                state(c["enabled"]),
                configs.serve_text(c["default"]),
                len(c["rules"]),
                c["version"],
            ]
            for env, c in found.items()
        ),
    )


@admin_command(app, "create")
def create_flag(
    key: Key,
    project: Project,
    file: JsonFile = None,
    name: Name = None,
    description: Description = None,
    flag_type: Type = None,
    kind: Kind = None,
    variants: Variants = None,
    tags: Tags = None,
    owner_team: OwnerTeam = None,
    lifetime_days: Lifetime = None,
    client_side: ClientSide = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a flag from options and/or a JSON `--file` (options win over the file).

    Defaults: the name is the key, the type boolean, and a boolean flag's variants are
    on=true and off=false. The new flag is OFF in every environment.
    """
    body = definition(read_body(file, "flag file")) if file else {}
    body.update(
        _fields(name, description, flag_type, kind, tags, owner_team, lifetime_days, client_side)
    )
    body.setdefault("name", key)
    body.setdefault("type", FlagType.BOOLEAN.value)
    if variants:
        body["variants"] = parse_variants(variants, body["type"])
    elif body["type"] == FlagType.BOOLEAN:
        body.setdefault("variants", {"on": True, "off": False})
    body.update(key=key, comment=comment)
    with connect(url, token) as api:
        flag = api.post(api_path("projects", project, "flags"), body).body
    if as_json:
        print_json(flag)
    else:
        note(f"created flag {flag['key']} in {project} (OFF in every environment)")
        print_table(FLAG_COLUMNS, [_flag_row(flag)])


@admin_command(app, "update")
def update_flag(
    key: Key,
    project: Project,
    file: JsonFile = None,
    name: Name = None,
    description: Description = None,
    flag_type: Type = None,
    kind: Kind = None,
    variants: Variants = None,
    tags: Tags = None,
    owner_team: OwnerTeam = None,
    lifetime_days: Lifetime = None,
    client_side: ClientSide = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Change a flag's definition: the given fields replace the current ones."""
    changes = read_body(file, "flag file") if file else {}
    same_flag = changes.get("key", key) == key
    version = changes.get("version")
    expected = version if same_flag and isinstance(version, int) else None
    changes = definition(changes)
    changes.update(
        _fields(name, description, flag_type, kind, tags, owner_team, lifetime_days, client_side)
    )
    if not changes and not variants:
        raise InputError("nothing to change: give --file or at least one field option")
    path = api_path("projects", project, "flags", key)
    with connect(url, token) as api:
        current = api.get(path).body
        body = {**definition(current), **changes, "comment": comment}
        if variants:
            body["variants"] = parse_variants(variants, body["type"])
        flag = api.put(path, body, if_match=current["version"] if expected is None else expected)
    if as_json:
        print_json(flag.body)
    else:
        note(f"updated flag {key} in {project}")
        print_table(FLAG_COLUMNS, [_flag_row(flag.body)])


@admin_command(app, "delete")
def delete_flag(
    key: Key,
    project: Project,
    yes: Yes = False,
    comment: Comment = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Delete a flag from every environment (its history is kept)."""
    if not yes:
        typer.confirm(f"Delete flag {key} from every environment of {project}?", abort=True)
    path = api_path("projects", project, "flags", key)
    with connect(url, token) as api:
        current = api.get(path)
        params = {"comment": comment} if comment else None
        api.delete(path, if_match=current.body["version"], params=params)
    note(f"deleted flag {key} from {project}")


app.add_typer(configs.app, name="config")
app.command("toggle")(reported(configs.toggle))
app.command("history")(reported(flag_history.history))
app.command("versions")(reported(flag_history.versions))
app.command("revert")(reported(flag_history.revert))
app.command("usage")(reported(usage.usage))
app.command("debug-events")(reported(usage.debug_events))
app.command("stale")(reported(usage.stale))
