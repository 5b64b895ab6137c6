"""Guarded rollouts in the console: the project's release plans, starting one from a template,
and a plan's page with its stages, gate charts and commands (pause, resume, advance, abort).

Every command is one call to :class:`RolloutService`, which checks the role again (editor;
admin in a protected environment), so a viewer who posts a command gets its 403. Aborting
restores the flag's configuration from before the plan, so it asks first: without JavaScript
the server answers the first POST with a confirmation page, with JavaScript a ``<dialog>``
asks and the form is posted already confirmed (as the kill switch does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from fader_server.errors import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
)
from fader_server.services.rollouts.records import PlanStatus
from fader_server.storage.ports import Resource
from fader_server.web import frame, rollout_charts, rollout_view
from fader_server.web.forms import CheckedForm, FieldErrors, from_problems
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

PAGE_SIZE = 50
MAX_FLAGS = 500
Param = Annotated[str | None, Query(max_length=200)]
PlanId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_FIELDS = {
    "/flag": "flag",
    "/environment": "environment",
    "/control": "control",
    "/treatment": "treatment",
    "/template": "template",
    "/stages": "template",
    "/gates": "template",
    "/split_by": "template",
    "/enable": "enable",
}
_REQUIRED = {
    "flag": "Choose the flag to release.",
    "environment": "Choose the environment.",
    "control": "Choose the variant served today.",
    "treatment": "Choose the variant to roll out.",
    "template": "Choose a template for the stages and gates.",
}
_DONE = {
    "pause": "Paused",
    "resume": "Resumed",
    "advance": "Advanced",
    "abort": "Aborted",
}


@dataclass
class StartForm:
    flag: str = ""
    environment: str = ""
    control: str = ""
    treatment: str = ""
    template: str = ""
    enable: bool = False
    comment: str = ""


@router.get("/projects/{project}/rollouts")
def rollout_list(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    flag: Param = None,
    before: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    before_id = int(before) if before and before.isdigit() else None
    flag = (flag or "").strip() or None
    found = svc.rollouts.list_plans(
        session.principal, project, limit=PAGE_SIZE, before_id=before_id, flag=flag
    )
    return render(
        request,
        "rollouts/list.html",
        {
            "session": session,
            "view": view,
            "section": "rollouts",
            "title": f"Rollouts of {flag}" if flag else "Rollouts",
            "flag": flag,
            "plans": found,
            "rv": rollout_view,
            "older": view.href("rollouts", flag=flag, before=found[-1].stored.id)
            if len(found) == PAGE_SIZE
            else None,
            "newest": view.href("rollouts", flag=flag) if before_id else None,
        },
    )


def _start_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    form: StartForm,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    principal, project = session.principal, view.project.key
    flags = svc.flags.search(principal, project, limit=MAX_FLAGS, after_key=None, query=None)
    templates = svc.rollout_templates.list_templates(principal, project)
    return render(
        request,
        "rollouts/new.html",
        {
            "session": session,
            "view": view,
            "section": "rollouts",
            "title": "Start a release",
            "form": form,
            "errors": errors,
            "flags": [(f.key, f"{f.data.get('name') or f.key} ({f.key})") for f in flags],
            "variants": [(v, v) for v in sorted({v for f in flags for v in _variants(f)})],
            "variant_hint": "; ".join(f"{f.key}: {', '.join(_variants(f))}" for f in flags),
            "environments": [
                (e.key, e.name + (" (protected)" if e.protected else "")) for e in view.environments
            ],
            "templates": [(t.key, f"{t.name} ({t.key})") for t in templates],
        },
        status=status,
    )


def _variants(flag: Resource) -> list[str]:
    return sorted(flag.data.get("variants") or {})


@router.get("/projects/{project}/rollouts/_new")
def new_rollout(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    flag: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    form = StartForm(flag=flag or "", environment=view.env.key)
    return _start_page(request, svc, session, view, form)


@router.post("/projects/{project}/rollouts/_new")
def create_rollout(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    start = StartForm(
        flag=form.text("flag"),
        environment=form.text("environment"),
        control=form.text("control"),
        treatment=form.text("treatment"),
        template=form.text("template"),
        enable=form.checked("enable"),
        comment=form.text("comment"),
    )
    errors = FieldErrors()
    for name, message in _REQUIRED.items():
        if not getattr(start, name):
            errors.add(name, message)
    if not errors:
        body = {
            "flag": start.flag,
            "environment": start.environment,
            "control": start.control,
            "treatment": start.treatment,
            "template": start.template,
            "stages": None,
            "gates": None,
            "split_by": None,
            "enable": start.enable,
            "start": True,
        }
        try:
            created = svc.rollouts.create(session.principal, project, body, start.comment or None)
        except InvalidInputError as exc:
            from_problems(exc.problems, "/body", _FIELDS, errors)
            if not exc.problems:
                errors.add(None, exc.detail)
        except InvalidStateError as exc:  # the flag is off, or serves the treatment already
            errors.add("enable" if '"enable": true' in exc.detail else None, exc.detail)
        except (AlreadyExistsError, NotFoundError) as exc:
            errors.add(None, exc.detail)
        else:
            plan_id = created.stored.id
            return redirect(
                request,
                view.href(f"rollouts/{plan_id}"),
                f"Started release plan {plan_id}: {start.flag} in "
                f"{view.environment(start.environment).name}, stage "
                f"“{rollout_view.current_stage(created)}”.",
            )
    return _start_page(request, svc, session, view, start, errors, status=422)


def _gate_charts(plan: PlanStatus) -> list[tuple[rollout_view.GateView, object]]:
    control, treatment = plan.plan.control, plan.plan.treatment
    return [
        (gate, rollout_charts.gate_chart(gate, control, treatment, f"gate-{gate.index}-chart"))
        for gate in rollout_view.gates(plan)
    ]


@router.get("/projects/{project}/rollouts/{plan_id}")
def rollout_page(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    plan_id: PlanId,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    plan = svc.rollouts.get(session.principal, project, plan_id)
    incident_id = plan.stored.incident_id
    return render(
        request,
        "rollouts/detail.html",
        {
            "session": session,
            "view": view,
            "section": "rollouts",
            "title": f"Release plan {plan_id}: {plan.plan.flag}",
            "plan": plan,
            "rv": rollout_view,
            "plan_env": view.environment(plan.plan.environment),
            "gate_charts": _gate_charts(plan),
            "incident": svc.rollouts.incident(session.principal, project, incident_id)
            if incident_id is not None
            else None,
        },
    )


@router.post("/projects/{project}/rollouts/{plan_id}/{command}")
def rollout_command(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    plan_id: PlanId,
    command: Annotated[str, Path(pattern="^(pause|resume|advance|abort)$")],
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    back = view.href(f"rollouts/{plan_id}")
    comment = form.text("comment") or None
    principal = session.principal
    if command == "abort" and form.get("confirmed") != "yes":
        plan = svc.rollouts.get(principal, project, plan_id)
        env = view.environment(plan.plan.environment)
        return render(
            request,
            "confirm.html",
            {
                "session": session,
                "view": view,
                "section": "rollouts",
                "title": f"Abort release plan {plan_id} and roll {plan.plan.flag} back?",
                "explanation": (
                    f"{plan.plan.flag} in {env.name} goes back to the configuration it had "
                    "before the plan started, for everyone, within seconds. The plan cannot "
                    "be resumed afterwards."
                ),
                "action": request.url.path,
                "fields": {"env": view.env.key},
                "confirm_label": f"Abort and roll back {plan.plan.flag} in {env.name}",
                "danger": True,
                "cancel": back,
                "with_comment": True,
            },
        )
    run = {
        "pause": svc.rollouts.pause,
        "resume": svc.rollouts.resume,
        "advance": svc.rollouts.advance,
        "abort": svc.rollouts.abort,
    }[command]
    done = run(principal, project, plan_id, comment)
    return redirect(
        request,
        back,
        f"{_DONE[command]} release plan {plan_id}; it is now "
        f"{rollout_view.status_label(done).lower()} at stage “{rollout_view.current_stage(done)}”.",
    )
