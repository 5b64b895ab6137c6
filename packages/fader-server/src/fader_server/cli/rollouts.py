"""`fader rollouts ...`: guarded rollouts from the command line.

    fader rollouts templates list|show|create|delete     stages and gates saved per project
    fader rollouts create --flag F --env E ...            a plan, from --template or --file
    fader rollouts list | status ID                       where plans are, and why
    fader rollouts start|pause|resume|advance|abort ID    move a plan by hand
    fader rollouts incidents | incident ID                what rollbacks recorded (all
                                                          incidents: `fader incidents`)

Who hears about plans: `fader webhooks` (rollout events).

A plan file holds ``stages`` and ``gates`` as in ``docs/rollouts.md`` (and may hold the other
fields of a plan too; options win). Durations are seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import (
    Comment,
    Environment,
    Json,
    JsonFile,
    Limit,
    Project,
    Token,
    Url,
    admin_command,
    connect,
    read_body,
)
from fader_server.cli.client import AdminApi, api_path
from fader_server.cli.eval import InputError
from fader_server.cli.incidents import show_incident
from fader_server.cli.output import note, print_json, print_table
from fader_server.cli.rollout_output import (
    PLAN_COLUMNS,
    plan_row,
    print_template,
    show_plan,
    stage_label,
)

app = typer.Typer(
    help="Guarded rollouts: release plans that advance on healthy metrics and roll back on "
    "regressions.",
    no_args_is_help=True,
)
templates = typer.Typer(help="Release-plan templates: stages and gates saved per project.")
app.add_typer(templates, name="templates")

PlanId = Annotated[int, typer.Argument(help="Release plan id.", min=1, show_default=False)]
TemplateKey = Annotated[str, typer.Argument(help="Template key.", show_default=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _rollouts(project: str, *rest: str | int) -> str:
    return api_path("projects", project, "rollouts", *rest)


# ---------------------------------------------------------------- templates
@admin_command(templates, "list")
def list_templates(
    project: Project, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """List a project's release-plan templates."""
    with connect(url, token) as api:
        items = api.get(api_path("projects", project, "rollout-templates")).body["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        ["KEY", "NAME", "STAGES", "GATES", "CREATED BY"],
        (
            [
                t["key"],
                t["name"],
                " → ".join(s["name"] for s in t["stages"]),
                len(t["gates"]),
                t["created_by"],
            ]
            for t in items
        ),
    )


@admin_command(templates, "show")
def show_template(
    key: TemplateKey,
    project: Project,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Show a template's stages and gates."""
    with connect(url, token) as api:
        template = api.get(api_path("projects", project, "rollout-templates", key)).body
    if as_json:
        print_json(template)
        return
    print_template(template)


@admin_command(templates, "create")
def create_template(
    key: TemplateKey,
    project: Project,
    file: Annotated[str, typer.Option("--file", "-f", help="JSON with stages and gates.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Save stages and gates from a JSON file as a template."""
    body = read_body(file, "template file")
    body = {k: v for k, v in body.items() if k in ("stages", "gates", "split_by", "name")}
    body.update(key=key, name=name or body.get("name") or key, comment=comment)
    with connect(url, token) as api:
        template = api.post(api_path("projects", project, "rollout-templates"), body).body
    if as_json:
        print_json(template)
    else:
        note(f"created template {key} in {project} ({len(template['stages'])} stages)")


@admin_command(templates, "delete")
def delete_template(
    key: TemplateKey,
    project: Project,
    yes: Yes = False,
    comment: Comment = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Delete a template (plans created from it keep their stages)."""
    if not yes:
        typer.confirm(f"Delete template {key} of {project}?", abort=True)
    with connect(url, token) as api:
        params = {"comment": comment} if comment else None
        api.delete(api_path("projects", project, "rollout-templates", key), params=params)
    note(f"deleted template {key} from {project}")


# -------------------------------------------------------------------- plans
@admin_command(app, "create")
def create_plan(
    project: Project,
    flag: Annotated[str, typer.Option("--flag", help="Flag to roll out.")],
    environment: Environment,
    control: Annotated[str, typer.Option(help="Variant served today.")],
    treatment: Annotated[str, typer.Option(help="Variant to roll out.")],
    template: Annotated[
        str | None, typer.Option("--template", "-t", help="Take stages and gates from it.")
    ] = None,
    file: JsonFile = None,
    split_by: Annotated[
        str | None, typer.Option(help="Context attribute splits bucket on.")
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    enable: Annotated[
        bool,
        typer.Option(
            "--enable", help="Turn the flag on if it is off in the environment when it starts."
        ),
    ] = False,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a release plan for a flag in one environment."""
    if (template is None) == (file is None):
        raise InputError("give either --template or --file (a JSON file with stages and gates)")
    body: dict[str, Any] = read_body(file, "plan file") if file else {}
    body.update(flag=flag, environment=environment, control=control, treatment=treatment)
    extra = {"template": template, "split_by": split_by, "comment": comment}
    body.update({k: v for k, v in extra.items() if v is not None})
    body["start"] = start
    if enable:
        body["enable"] = True
    with connect(url, token) as api:
        plan = api.post(_rollouts(project), body).body
    if as_json:
        print_json(plan)
        return
    note(f"created release plan {plan['id']} for {flag} in {environment} ({plan['status']})")
    print_table(PLAN_COLUMNS, [plan_row(plan)])


@admin_command(app, "list")
def list_plans(
    project: Project,
    flag: Annotated[str | None, typer.Option("--flag", help="Only this flag's plans.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only plans in this status (running, completed...).")
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List release plans, newest first."""
    params = {k: v for k, v in {"flag": flag, "status": status}.items() if v is not None}
    with connect(url, token) as api:
        plans = list(api.items(_rollouts(project), params, limit=limit))
    if as_json:
        print_json(plans)
    else:
        print_table(PLAN_COLUMNS, (plan_row(p) for p in plans))


@admin_command(app, "status")
def plan_status(
    plan_id: PlanId,
    project: Project,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Where a plan is: its stage and time in it, the latest gate results, its incident."""
    with connect(url, token) as api:
        plan = api.get(_rollouts(project, plan_id)).body
    if as_json:
        print_json(plan)
    else:
        show_plan(plan)


def _command(
    api: AdminApi,
    project: str,
    plan_id: int,
    verb: str,
    comment: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = {"comment": comment} if comment else {}
    body.update(extra or {})
    plan: dict[str, Any] = api.post(_rollouts(project, plan_id, verb), body).body
    return plan


def _report(plan: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(plan)
    else:
        note(f"release plan {plan['id']} {what}: {plan['status']} at stage {stage_label(plan)}")


def _plan_command(verb: str, done: str, help_text: str) -> None:
    """Register `fader rollouts <verb> ID`: the plan commands differ only in their verb."""

    def command(
        plan_id: PlanId,
        project: Project,
        comment: Comment = None,
        as_json: Json = False,
        url: Url = None,
        token: Token = None,
    ) -> None:
        with connect(url, token) as api:
            _report(_command(api, project, plan_id, verb, comment), as_json, done)

    command.__name__ = f"{verb}_plan"
    command.__doc__ = help_text
    admin_command(app, verb)(command)


@admin_command(app, "start")
def start_plan(
    plan_id: PlanId,
    project: Project,
    enable: Annotated[
        bool, typer.Option("--enable", help="Turn the flag on if it is off in the environment.")
    ] = False,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Start a pending plan: its flag serves the first stage now (a flag that is off needs
    --enable)."""
    extra = {"enable": True} if enable else None
    with connect(url, token) as api:
        _report(_command(api, project, plan_id, "start", comment, extra), as_json, "started")


for _verb, _done, _help in (
    ("pause", "paused", "Stop advancing (gates still roll back a paused plan on a regression)."),
    ("resume", "resumed", "Run a paused plan again (paused time does not count toward the stage)."),
    (
        "advance",
        "advanced",
        "Go to the next stage now; also approves a stage waiting for approval.",
    ),
):
    _plan_command(_verb, _done, _help)


@admin_command(app, "abort")
def abort_plan(
    plan_id: PlanId,
    project: Project,
    yes: Yes = False,
    comment: Comment = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Stop a plan for good; its flag gets back the configuration it had before the plan."""
    if not yes:
        typer.confirm(f"Abort release plan {plan_id} of {project}?", abort=True)
    with connect(url, token) as api:
        _report(_command(api, project, plan_id, "abort", comment), as_json, "aborted")


# ---------------------------------------------------------------- incidents
@admin_command(app, "incidents")
def list_incidents(
    project: Project,
    plan_id: Annotated[int | None, typer.Option("--rollout", help="Only this plan's.")] = None,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Incidents opened by rollbacks, newest first."""
    params = {"rollout": plan_id} if plan_id is not None else None
    with connect(url, token) as api:
        items = list(api.items(api_path("projects", project, "incidents"), params, limit=limit))
    if as_json:
        print_json(items)
        return
    print_table(
        ["ID", "ROLLOUT", "OPENED", "STAGE", "METRIC"],
        ([i["id"], i["rollout"], i["opened_at"], i["stage_name"], i["metric"]] for i in items),
    )


admin_command(app, "incident")(show_incident)  # the same as `fader incidents show`
