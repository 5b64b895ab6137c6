"""`fader incidents`: incidents that lead to fixes, over the admin API (docs/incidents.md).

    fader incidents list [--state open|acknowledged|resolved]    newest first
    fader incidents show ID                                      evidence, items, timeline
    fader incidents open --title T [--severity S] [--flag F] [--env E] [--description D]
    fader incidents ack|reopen ID [-m WHY]                       move it along
    fader incidents resolve ID --resolution TEXT [-m WHY]
    fader incidents postmortem ID (--summary TEXT | --summary-file F)
    fader incidents action list [--status open|overdue|done]     across incidents
    fader incidents action add ID --title T --owner USER --due YYYY-MM-DD
    fader incidents action done ID ITEM [-m WHY]

The post-mortem is written with the ETag just read, so a summary someone else saved in between
is never overwritten (the command fails and says so).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from fader_server.cli.admin import Comment, Json, Limit, Project, Token, Url, connect
from fader_server.cli.admin import admin_command as command
from fader_server.cli.client import api_path
from fader_server.cli.eval import InputError
from fader_server.cli.incident_output import ITEM_COLUMNS, item_row, print_incident
from fader_server.cli.output import note, print_json, print_table

app = typer.Typer(
    help="Incidents: acknowledge, resolve, and a post-mortem with at most three action items.",
    no_args_is_help=True,
)
actions = typer.Typer(help="A post-mortem's action items: owned, dated, done.")
app.add_typer(actions, name="action")

IncidentId = Annotated[int, typer.Argument(help="Incident id.", min=1, show_default=False)]
ItemId = Annotated[int, typer.Argument(help="Action item id.", min=1, show_default=False)]


def _incidents(project: str, *rest: str | int) -> str:
    return api_path("projects", project, "incidents", *rest)


def _report(incident: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(incident)
    else:
        note(f"incident {incident['id']} {what}: {incident['state']}")


@command(app, "list")
def list_incidents(
    project: Project,
    state: Annotated[
        str | None, typer.Option("--state", help="open, acknowledged or resolved.")
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Incidents, newest first: opened by rollbacks or by hand."""
    params = {"state": state} if state else None
    with connect(url, token) as api:
        items = list(api.items(_incidents(project), params, limit=limit))
    if as_json:
        print_json(items)
        return
    print_table(
        ["ID", "STATE", "SEVERITY", "TITLE", "OPENED", "BY"],
        ([i["id"], i["state"], i["severity"], i["title"], i["opened_at"], i["opened_by"]]
         for i in items),
    )  # fmt: skip


@command(app, "show")
def show_incident(
    incident_id: IncidentId,
    project: Project,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """An incident: its state, evidence, post-mortem, action items and timeline."""
    with connect(url, token) as api:
        incident = api.get(_incidents(project, incident_id)).body
    if as_json:
        print_json(incident)
    else:
        print_incident(incident)


@command(app, "open")
def open_incident(
    project: Project,
    title: Annotated[str, typer.Option("--title", help="What is wrong, in a line.")],
    severity: Annotated[
        str, typer.Option("--severity", help="critical, major or minor.")
    ] = "major",
    flag: Annotated[str | None, typer.Option("--flag", help="The flag concerned.")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Where it happens.")] = None,
    description: Annotated[str, typer.Option("--description", help="More detail.")] = "",
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Open an incident by hand (rollbacks open theirs by themselves)."""
    body: dict[str, Any] = {"title": title, "severity": severity, "description": description}
    if flag:
        body["flag"] = flag
    if env:
        body["environment"] = env
    with connect(url, token) as api:
        incident = api.post(_incidents(project), body).body
    _report(incident, as_json, "opened")


def _step(
    project: str, incident_id: int, verb: str, body: dict[str, Any], url: Any, token: Any
) -> Any:
    with connect(url, token) as api:
        return api.post(_incidents(project, incident_id, verb), body).body


@command(app, "resolve")
def resolve(
    incident_id: IncidentId,
    project: Project,
    resolution: Annotated[str, typer.Option("--resolution", "-r", help="What ended it.")],
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Resolve, saying what ended it."""
    body = {"resolution": resolution, **({"comment": comment} if comment else {})}
    _report(_step(project, incident_id, "resolve", body, url, token), as_json, "resolved")


def _simple_step(verb: str, name: str, done: str, help_text: str) -> None:
    """A step with nothing to fill in but an optional comment: `ack`, `reopen`."""

    def step(
        incident_id: IncidentId,
        project: Project,
        comment: Comment = None,
        as_json: Json = False,
        url: Url = None,
        token: Token = None,
    ) -> None:
        body = {"comment": comment} if comment else {}
        _report(_step(project, incident_id, verb, body, url, token), as_json, done)

    step.__doc__ = help_text
    command(app, name)(step)


_simple_step("acknowledge", "ack", "acknowledged", "Acknowledge: someone is on it.")
_simple_step("reopen", "reopen", "reopened", "Reopen a resolved incident: it is back.")


@command(app, "postmortem")
def postmortem(
    incident_id: IncidentId,
    project: Project,
    summary: Annotated[
        str | None, typer.Option("--summary", "-s", help="What happened and why.")
    ] = None,
    summary_file: Annotated[
        Path | None, typer.Option("--summary-file", help="Read the summary from a file.")
    ] = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Write the post-mortem's summary (replacing the previous one)."""
    if (summary is None) == (summary_file is None):
        raise InputError("give the summary with either --summary or --summary-file")
    if summary_file is not None:
        try:
            summary = summary_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {str(summary_file)!r}: {exc.strerror}") from exc
    path = _incidents(project, incident_id)
    with connect(url, token) as api:
        read = api.get(path)
        assert read.version is not None  # the server sends the incident's ETag
        written = api.put(path + "/postmortem", {"summary": summary}, if_match=read.version).body
    _report(written, as_json, "post-mortem saved")


# ------------------------------------------------------------- action items
@command(actions, "list")
def list_items(
    project: Project,
    status: Annotated[
        str | None,
        typer.Option("--status", help="open (overdue included), overdue or done; default all."),
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """The project's action items across incidents, soonest due first."""
    params = {"status": status} if status else None
    path = api_path("projects", project, "action-items")
    with connect(url, token) as api:
        items = list(api.items(path, params, limit=limit))
    if as_json:
        print_json(items)
    else:
        print_table(ITEM_COLUMNS, (item_row(i) for i in items))


@command(actions, "add")
def add_item(
    incident_id: IncidentId,
    project: Project,
    title: Annotated[str, typer.Option("--title", help="The fix, in a line.")],
    owner: Annotated[str, typer.Option("--owner", help="Username of a project member.")],
    due: Annotated[str, typer.Option("--due", help="Due day (UTC), YYYY-MM-DD.")],
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Add an action item (at most three per incident)."""
    try:
        day = date.fromisoformat(due)
    except ValueError as exc:
        raise InputError(f"--due must be a day as YYYY-MM-DD, not {due!r}") from exc
    body = {"title": title, "owner": owner, "due_on": day.isoformat()}
    with connect(url, token) as api:
        item = api.post(_incidents(project, incident_id, "action-items"), body).body
    if as_json:
        print_json(item)
    else:
        note(f"action item {item['id']} added to incident {incident_id}: {owner}, due {day}")


@command(actions, "done")
def complete_item(
    incident_id: IncidentId,
    item_id: ItemId,
    project: Project,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Mark an action item done."""
    body = {"comment": comment} if comment else {}
    path = _incidents(project, incident_id, "action-items", item_id, "done")
    with connect(url, token) as api:
        item = api.post(path, body).body
    if as_json:
        print_json(item)
    else:
        note(f"action item {item['id']} of incident {incident_id} done")
