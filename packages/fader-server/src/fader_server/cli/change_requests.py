"""`fader change-requests ...` and `fader schedules ...`: changes to protected environments
proposed, reviewed and applied (docs/change-control.md).

Operations come from `--enable`/`--disable ENV/FLAG` (the kill switch, as a request),
`--restore ENV/FLAG@VERSION`, `--config ENV/FLAG=FILE` (a configuration as `fader flags
config get --json` prints it) or `--file` (a JSON object with `operations`, and optionally
the other fields of the request, as the API takes them). `update` reads the request first and
sends its version as ``If-Match``, so nobody's update is overwritten.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from fader_server.cli.admin import (
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
)
from fader_server.cli.client import AdminApi, api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import note, print_fields, print_heading, print_json, print_table

app = typer.Typer(
    help="Change requests: propose, review and apply changes to protected environments.",
    no_args_is_help=True,
)
schedules_app = typer.Typer(
    help="Scheduled changes: change requests applied at a set time.", no_args_is_help=True
)

COLUMNS = ["ID", "STATUS", "TITLE", "AUTHOR", "APPLY AT", "CHANGES"]
_CONFIG_READ_ONLY = ("flag", "environment", "version")

RequestId = Annotated[int, typer.Argument(help="Change request id.", min=1, show_default=False)]
Message = Annotated[str | None, typer.Option("--message", "-m", help="What you say (recorded).")]
Title = Annotated[str | None, typer.Option("--title", help="A one-line title.")]
Problem = Annotated[str | None, typer.Option("--problem", help="The problem it solves.")]
Change = Annotated[str | None, typer.Option("--change", help="The change, in words.")]
Alternatives = Annotated[
    str | None, typer.Option("--alternatives", help="Alternatives considered.")
]
Rollback = Annotated[str | None, typer.Option("--rollback", help="How it will be rolled back.")]
Enable = Annotated[
    list[str] | None,
    typer.Option("--enable", metavar="ENV/FLAG", help="Turn a flag on; repeat for several."),
]
Disable = Annotated[
    list[str] | None,
    typer.Option("--disable", metavar="ENV/FLAG", help="Turn a flag off; repeat for several."),
]
Restore = Annotated[
    list[str] | None,
    typer.Option("--restore", metavar="ENV/FLAG@VERSION", help="Restore an earlier configuration."),
]
Config = Annotated[
    list[str] | None,
    typer.Option(
        "--config", metavar="ENV/FLAG=FILE", help="Set a configuration read from a JSON file."
    ),
]
Contexts = Annotated[
    str | None,
    typer.Option(
        "--contexts",
        help='JSON file: {"contexts": [...]} to preview the impact on (at most 1,000).',
    ),
]
ApplyAt = Annotated[
    datetime | None,
    typer.Option(
        "--apply-at",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
        help="Apply it then, once approved (e.g. 2030-01-31T09:00:00+00:00).",
    ),
]


def _row(request: dict[str, Any]) -> list[Any]:
    return [
        request["id"],
        request["status"],
        request["title"],
        request["author"],
        request["apply_at"],
        request["targets"],
    ]


def _split_target(value: str, option: str) -> tuple[str, str]:
    env, _, flag = value.partition("/")
    if not env or not flag:
        raise InputError(f"{option} takes ENV/FLAG, e.g. production/new-checkout, not {value!r}")
    return env, flag


def _operations(
    enable: list[str] | None,
    disable: list[str] | None,
    restore: list[str] | None,
    config: list[str] | None,
) -> list[dict[str, Any]]:
    """The operations the command-line options describe, in the order of the options."""
    found: list[dict[str, Any]] = []
    for option, values, enabled in (("--enable", enable, True), ("--disable", disable, False)):
        for value in values or []:
            env, flag = _split_target(value, option)
            op = {"kind": "flag_config", "environment": env, "flag": flag, "enabled": enabled}
            found.append(op)
    for value in restore or []:
        target, _, version = value.partition("@")
        env, flag = _split_target(target, "--restore")
        if not version.isdigit():
            raise InputError(f"--restore takes ENV/FLAG@VERSION, not {value!r}")
        found.append(
            {
                "kind": "flag_config",
                "environment": env,
                "flag": flag,
                "restore_version": int(version),
            }
        )
    for value in config or []:
        target, _, path = value.partition("=")
        env, flag = _split_target(target, "--config")
        if not path:
            raise InputError(f"--config takes ENV/FLAG=FILE, not {value!r}")
        body = read_body(path, "configuration")
        data = {k: v for k, v in body.items() if k not in _CONFIG_READ_ONLY}
        found.append({"kind": "flag_config", "environment": env, "flag": flag, "config": data})
    return found


def _body(
    file: str | None,
    title: str | None,
    texts: tuple[str | None, str | None, str | None, str | None],
    operations: list[dict[str, Any]],
    apply_at: datetime | None,
    *,
    proposal: dict[str, Any],
) -> dict[str, Any]:
    """A request body from `--file` and the options (which win): operations added to the
    file's, proposal texts over `proposal` (the current one, for an update, sent only when
    something in it changes; always for a new request)."""
    body = read_body(file, "change request") if file else {}
    operations = [*body.get("operations", []), *operations]
    if operations:
        body["operations"] = operations
    if not proposal or "proposal" in body or any(t is not None for t in texts):
        body["proposal"] = _proposal({**proposal, **body.get("proposal", {})}, *texts)
    if title is not None:
        body["title"] = title
    if apply_at is not None:
        body["apply_at"] = apply_at.isoformat()
    return body


def _proposal(
    base: dict[str, Any],
    problem: str | None,
    change: str | None,
    alternatives: str | None,
    rollback: str | None,
) -> dict[str, Any]:
    given = {
        "problem": problem,
        "change": change,
        "alternatives": alternatives,
        "rollback": rollback,
    }
    return {**base, **{k: v for k, v in given.items() if v is not None}}


def _print_request(request: dict[str, Any]) -> None:
    print_fields(
        {
            "id": request["id"],
            "title": request["title"],
            "status": request["status"],
            "author": request["author"],
            "apply at": request["apply_at"],
            "failure": request["failure"],
            "applied by": request["applied_by"],
            **{name: text for name, text in request["proposal"].items() if text},
        }
    )
    print_heading("Changes")
    for op in request["operations"]:
        typer.echo(f"{op['target']} (base version {op['base_version']})")
        for change in op["diff"]:
            before = json.dumps(change.get("before"), ensure_ascii=False)
            after = json.dumps(change.get("after"), ensure_ascii=False)
            typer.echo(f"  {change['path']}: {before} -> {after}")
    if request["requirements"]:
        print_heading("Approvals")
        print_table(
            ["ENVIRONMENT", "NEEDS", "FROM", "APPROVED BY", "MET"],
            (
                [r["environment"], r["approvals"], r["approver_roles"], r["approved_by"], r["met"]]
                for r in request["requirements"]
            ),
        )
    if request["moved"]:
        print_heading("Moved since proposed (update it)")
        for line in request["moved"]:
            typer.echo(f"  {line}")
    impact = request.get("impact")
    if impact is not None:
        print_heading(f"Impact ({impact['contexts']} contexts, source: {impact['source']})")
        print_table(
            ["ENVIRONMENT", "FLAG", "EVALUATED", "CHANGED", "EXAMPLES"],
            (
                [
                    f["environment"],
                    f["flag"],
                    f["evaluated"],
                    f["changed"],
                    [f"{e['key']}: {e['before']} -> {e['after']}" for e in f["examples"][:3]],
                ]
                for f in impact["flags"]
            ),
        )
    if request["reviews"]:
        print_heading("Reviews")
        print_table(
            ["AT", "WHO", "ROLE", "KIND", "SAYS"],
            ([r["at"], r["actor"], r["role"], r["kind"], r["body"]] for r in request["reviews"]),
        )


def _path(project: str, *rest: str | int) -> str:
    return api_path("projects", project, "change-requests", *rest)


def _act(
    api: AdminApi, project: str, request_id: int, verb: str, body: dict[str, Any] | None
) -> dict[str, Any]:
    reply: dict[str, Any] = api.post(_path(project, request_id, verb), body).body
    return reply


def _done(request: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        print_json(request)
    else:
        note(message)
        print_table(COLUMNS, [_row(request)])


# ------------------------------------------------------------------ change-requests
@admin_command(app, "list")
def list_requests(
    project: Project,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="open, approved, needs_update, applied...; repeatable."),
    ] = None,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Only those with an apply-at to come.")
    ] = False,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List a project's change requests, newest first."""
    params: dict[str, str | int] = {"scheduled": "true"} if scheduled else {}
    with connect(url, token) as api:
        found: list[dict[str, Any]] = []
        wanted_statuses: list[str | None] = list(status) if status else [None]
        for wanted in wanted_statuses:
            query = {**params, "status": wanted} if wanted else params
            found.extend(api.items(_path(project), query, limit=limit))
    if as_json:
        print_json(found)
    else:
        print_table(COLUMNS, (_row(r) for r in found))


@admin_command(app, "show")
def show_request(
    request_id: RequestId,
    project: Project,
    impact: Annotated[
        bool, typer.Option("--impact/--no-impact", help="Evaluate the impact preview.")
    ] = True,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Show a request: its proposal, the diff of each change, approvals, impact, reviews."""
    with connect(url, token) as api:
        request = api.get(_path(project, request_id), {"impact": str(impact).lower()}).body
    if as_json:
        print_json(request)
    else:
        _print_request(request)


@admin_command(app, "propose")
def propose(
    project: Project,
    title: Title = None,
    problem: Problem = None,
    change: Change = None,
    alternatives: Alternatives = None,
    rollback: Rollback = None,
    enable: Enable = None,
    disable: Disable = None,
    restore: Restore = None,
    config: Config = None,
    file: JsonFile = None,
    contexts: Contexts = None,
    apply_at: ApplyAt = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Propose a change instead of making it; reviewers approve, then `apply` makes it."""
    body = _body(
        file,
        title,
        (problem, change, alternatives, rollback),
        _operations(enable, disable, restore, config),
        apply_at,
        proposal={},
    )
    if not body.get("operations"):
        raise InputError(
            "say what to change: --enable/--disable ENV/FLAG, --restore, --config or --file"
        )
    if "title" not in body:
        raise InputError("give the request a --title")
    if contexts:
        body["contexts"] = read_body(contexts, "contexts").get("contexts", [])
    with connect(url, token) as api:
        request = api.post(_path(project), body).body
    _done(request, as_json, f"proposed change request {request['id']} ({request['status']})")


@admin_command(app, "update")
def update(
    request_id: RequestId,
    project: Project,
    title: Title = None,
    problem: Problem = None,
    change: Change = None,
    alternatives: Alternatives = None,
    rollback: Rollback = None,
    enable: Enable = None,
    disable: Disable = None,
    restore: Restore = None,
    config: Config = None,
    file: JsonFile = None,
    apply_at: ApplyAt = None,
    unschedule: Annotated[bool, typer.Option("--unschedule", help="Remove apply-at.")] = False,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Update your request; new changes are made against the current versions (how a request
    that needs an update is brought up to date) and need approving again."""
    with connect(url, token) as api:
        current = api.get(_path(project, request_id), {"impact": "false"})
        body = _body(
            file,
            title,
            (problem, change, alternatives, rollback),
            _operations(enable, disable, restore, config),
            apply_at,
            proposal=current.body["proposal"],
        )
        if unschedule:
            body["unschedule"] = True
        assert current.version is not None
        request = api.put(_path(project, request_id), body, if_match=current.version).body
    _done(request, as_json, f"updated change request {request_id} ({request['status']})")


@admin_command(app, "comment")
def comment(
    request_id: RequestId,
    project: Project,
    message: Annotated[str, typer.Option("--message", "-m", help="The comment.")],
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Comment on a request."""
    with connect(url, token) as api:
        request = _act(api, project, request_id, "comments", {"body": message})
    _done(request, as_json, f"commented on change request {request_id}")


def _step(verb: str, past: str, field: str, doc: str) -> Any:
    """A command that posts one step (approve, reject, apply, cancel) with an optional
    message, sent as the request body's `field`."""

    def step(
        request_id: RequestId,
        project: Project,
        message: Message = None,
        as_json: Json = False,
        url: Url = None,
        token: Token = None,
    ) -> None:
        with connect(url, token) as api:
            body = {field: message} if message else None
            request = _act(api, project, request_id, verb, body)
        _done(request, as_json, f"{past} change request {request_id} ({request['status']})")

    step.__doc__ = doc
    return step


approve = _step("approve", "approved", "body", "Approve a request (never your own).")
reject = _step("reject", "rejected", "body", "Reject a request (never your own).")
apply = _step(
    "apply",
    "applied",
    "comment",
    "Apply an approved request now, all its changes at once (refused if a base moved).",
)
cancel = _step("cancel", "cancelled", "comment", "Withdraw your request (scheduled or not).")
for _name, _command in (
    ("approve", approve),
    ("reject", reject),
    ("apply", apply),
    ("cancel", cancel),
):
    admin_command(app, _name)(_command)


# ------------------------------------------------------------------------ schedules
@admin_command(schedules_app, "list")
def list_schedules(
    project: Project,
    flag: Annotated[
        str | None, typer.Option("--flag", help="Only those changing this flag.")
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List the changes scheduled in a project (or for one flag), with their time."""
    with connect(url, token) as api:
        if flag:
            found = api.get(api_path("projects", project, "flags", flag, "scheduled-changes")).body
        else:
            path = api_path("projects", project, "scheduled-changes")
            found = list(api.items(path, limit=limit))
    if as_json:
        print_json(found)
    else:
        print_table(COLUMNS, (_row(r) for r in found))


schedules_app.command("cancel", help="Cancel a scheduled change (its change request).")(
    reported(cancel)
)
