"""`fader flags config get|set` and `fader flags toggle`: a flag's configuration in one
environment (on/off, rules, default, prerequisites), and the kill switch.

`toggle` states an absolute intent ("this flag must be OFF in production now"): it reads the
configuration's ETag, writes with ``If-Match``, and when someone else changed it in between
(412) reads again and retries, a few times, because the intent does not depend on what
changed. A flip without `--on`/`--off` is resolved against the first read, so a retry can never
flip back what a colleague just flipped. When the flag is already in the wanted state nothing is
written and the audit log stays free of empty changes.
"""

from __future__ import annotations

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
    read_body,
    without,
)
from fader_server.cli.client import AdminApi, ProblemError, Reply, api_path
from fader_server.cli.output import print_fields, print_json, state

app = typer.Typer(help="A flag's configuration in one environment.", no_args_is_help=True)

TOGGLE_ATTEMPTS = 3
_PRECONDITION_FAILED = 412

Key = Annotated[str, typer.Argument(help="Flag key.", show_default=False)]


def config_path(project: str, environment: str, key: str) -> str:
    return api_path("projects", project, "environments", environment, "flags", key)


def serve_text(serve: dict[str, Any]) -> str:
    """`{"variant": "on"}` → ``on``; a split → ``on 25%, off 75%`` (and what it is by)."""
    if serve.get("variant") is not None:
        return str(serve["variant"])
    split = serve.get("split") or {}
    parts = ", ".join(f"{w['variant']} {w['weight']:g}%" for w in split.get("weights", []))
    by = f" by {split['by']}" if split.get("by") else ""
    return parts + by


def print_config(config: dict[str, Any]) -> None:
    print_fields(
        {
            "flag": config["flag"],
            "environment": config["environment"],
            "state": state(config["enabled"]),
            "off variant": config["offVariant"],
            "default": serve_text(config["default"]),
            "rules": len(config["rules"]),
            "prerequisites": [
                f"{p['flag']} in {', '.join(p['variants'])}" for p in config["prerequisites"]
            ],
            "version": config["version"],
        }
    )


@admin_command(app, "get")
def get_config(
    key: Key,
    project: Project,
    environment: Environment,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Show a flag's configuration in one environment (`--json`: all of it, for `set`)."""
    with connect(url, token) as api:
        config = api.get(config_path(project, environment, key)).body
    if as_json:
        print_json(config)
    else:
        print_config(config)


@admin_command(app, "set")
def set_config(
    key: Key,
    project: Project,
    environment: Environment,
    file: Annotated[
        str,
        typer.Option(
            "--file",
            "-f",
            help="JSON configuration ('-' for stdin), e.g. edited output of `config get --json`.",
        ),
    ],
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Replace a flag's configuration in one environment.

    A file printed by `config get --json` for this flag and environment carries the `version`
    it was read at: the write is refused if the configuration changed since. Otherwise the
    current version is read just before writing.
    """
    body = read_body(file, "configuration file")
    same_target = body.get("flag", key) == key and body.get("environment", environment) == (
        environment
    )
    expected = body.get("version") if same_target and isinstance(body.get("version"), int) else None
    payload = without(body, "flag", "environment", "version")
    if comment is not None:
        payload["comment"] = comment
    path = config_path(project, environment, key)
    with connect(url, token) as api:
        if expected is None:
            expected = api.get(path).version
        config = api.put(path, payload, if_match=expected if expected is not None else 0).body
    if as_json:
        print_json(config)
    else:
        print_config(config)


def switch(
    api: AdminApi, path: str, target: bool, comment: str | None, first: Reply
) -> tuple[dict[str, Any], bool]:
    """Bring `enabled` to `target` with compare-and-swap writes; return the configuration and
    whether this call changed it. Retries only on 412 (someone wrote in between)."""
    current = first
    for attempt in range(TOGGLE_ATTEMPTS):
        if current.body["enabled"] == target:
            return current.body, False
        try:
            reply = api.post(
                path + "/toggle", {"enabled": target, "comment": comment}, if_match=current.version
            )
        except ProblemError as exc:
            if exc.status != _PRECONDITION_FAILED or attempt == TOGGLE_ATTEMPTS - 1:
                raise
            current = api.get(path)
        else:
            return reply.body, True
    raise AssertionError("unreachable: the last attempt returns or raises")


def toggle(
    key: Key,
    project: Project,
    environment: Environment,
    on: Annotated[
        bool | None,
        typer.Option("--on/--off", help="The state to set (default: the opposite of now)."),
    ] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """The kill switch: turn a flag ON or OFF in one environment, now.

    Prints the resulting state and configuration version (`--json`: the configuration).
    """
    path = config_path(project, environment, key)
    with connect(url, token) as api:
        before = api.get(path)
        target = (not before.body["enabled"]) if on is None else on
        config, changed = switch(api, path, target, comment, before)
    if as_json:
        print_json(config)
    elif changed:
        typer.echo(
            f"{key} is now {state(config['enabled'])} in {environment} "
            f"(version {config['version']}; was {state(not config['enabled'])})"
        )
    else:
        typer.echo(
            f"{key} is already {state(config['enabled'])} in {environment} "
            f"(version {config['version']}); nothing changed"
        )
