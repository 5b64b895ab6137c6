"""Guarded rollouts: release plans and their templates (the incidents rollbacks open are served
by :mod:`.incidents`, webhooks by :mod:`.webhooks`).

Plan actions need the editor role (admin in a protected environment, as any change to a flag
there); reads need viewer. An action that does not apply to the plan's
status (resuming a plan that is not paused...) is a 409 ``invalid-state`` problem; a plan that
makes no sense (unknown segment or variant, percentages that do not grow) is a 422 naming the
field; a plan on a flag that is off (without ``enable``) or already serves the treatment to
everyone is a 409 ``invalid-state``. Every command a person gives is audited, and so announced
to the project's webhooks subscribed to ``rollout`` events (docs/notifications.md). See
``docs/rollouts.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status

from fader_server.api import pagination, problems
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.rollout_schemas import (
    CommandIn,
    PlanIn,
    PlanOut,
    PlanPage,
    StartIn,
    TemplateIn,
    TemplateList,
    TemplateOut,
)
from fader_server.api.security import Caller, Svc
from fader_server.services.rollouts.records import PlanStatus, at
from fader_server.storage.ports import RolloutTemplate

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["rollouts"], responses=problems.API_ERRORS
)

MAX_ID = 2**31 - 1  # ids are 32-bit serials on PostgreSQL
RolloutId = Annotated[int, Path(ge=1, le=MAX_ID, description="release plan id")]
Command = Annotated[CommandIn | None, Body()]
Start = Annotated[StartIn | None, Body()]


def _time(seconds: float | None) -> Any:
    return None if seconds is None else at(seconds)


def plan_out(view: PlanStatus) -> PlanOut:
    stored, plan, state = view.stored, view.plan, view.state
    data = plan.to_dict()
    started = stored.base_config is not None
    return PlanOut(
        id=stored.id,
        flag=plan.flag,
        environment=plan.environment,
        control=plan.control,
        treatment=plan.treatment,
        template=stored.template,
        status=state.status.value,
        stage=state.stage,
        stage_name=plan.stages[min(state.stage, len(plan.stages) - 1)].name,
        time_in_stage=view.time_in_stage,
        stages=list(data["stages"]),
        gates=list(data["gates"]),
        split_by=plan.split_by,
        enable=plan.enable,
        served_before=view.served_before,
        served_percents=[view.served_percent(i) or 0.0 for i in range(len(plan.stages))]
        if started
        else None,
        started_at=_time(state.started_at),
        finished_at=_time(state.finished_at),
        last_evaluation=stored.last_evaluation,
        incident=stored.incident_id,
        created_by=stored.created_by,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        version=stored.version,
    )


def template_out(template: RolloutTemplate) -> TemplateOut:
    return TemplateOut(
        key=template.key,
        name=template.name,
        stages=template.data["stages"],
        gates=template.data.get("gates") or [],
        split_by=template.data.get("split_by"),
        created_by=template.created_by,
        created_at=template.created_at,
    )


def _comment(body: CommandIn | None) -> str | None:
    return None if body is None else body.comment


# ---------------------------------------------------------------- templates
@router.post("/rollout-templates", status_code=status.HTTP_201_CREATED)
def create_template(project: str, body: TemplateIn, svc: Svc, caller: Caller) -> TemplateOut:
    data = body.model_dump(include={"stages", "gates", "split_by"})
    template = svc.rollout_templates.create(
        caller, project, body.key, body.name, data, body.comment
    )
    return template_out(template)


@router.get("/rollout-templates")
def list_templates(project: str, svc: Svc, caller: Caller) -> TemplateList:
    return TemplateList(
        items=[template_out(t) for t in svc.rollout_templates.list_templates(caller, project)]
    )


@router.get("/rollout-templates/{template}")
def get_template(project: str, template: str, svc: Svc, caller: Caller) -> TemplateOut:
    return template_out(svc.rollout_templates.get(caller, project, template))


@router.delete("/rollout-templates/{template}", status_code=status.HTTP_204_NO_CONTENT)
def delete_template(
    project: str,
    template: str,
    svc: Svc,
    caller: Caller,
    comment: Annotated[str | None, Query(max_length=2000)] = None,
) -> None:
    svc.rollout_templates.delete(caller, project, template, comment)


# -------------------------------------------------------------------- plans
@router.post("/rollouts", status_code=status.HTTP_201_CREATED)
def create_rollout(project: str, body: PlanIn, svc: Svc, caller: Caller) -> PlanOut:
    """Create a release plan from stages and gates, or from a template (``start: true`` also
    starts it)."""
    data = body.model_dump(exclude={"comment"})
    return plan_out(svc.rollouts.create(caller, project, data, body.comment))


@router.get("/rollouts")
def list_rollouts(
    project: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=20, alias="status")] = None,
) -> PlanPage:
    """Release plans, newest first."""
    found = svc.rollouts.list_plans(
        caller,
        project,
        limit=limit,
        before_id=pagination.decode_int(cursor),
        flag=flag,
        status=status,
    )
    return PlanPage(
        items=[plan_out(p) for p in found],
        next_cursor=pagination.next_cursor([str(p.stored.id) for p in found], limit),
    )


@router.get("/rollouts/{rollout}")
def get_rollout(project: str, rollout: RolloutId, svc: Svc, caller: Caller) -> PlanOut:
    """The plan's status: stage, time in stage, latest gate results, incident."""
    return plan_out(svc.rollouts.get(caller, project, rollout))


@router.post("/rollouts/{rollout}/start")
def start_rollout(
    project: str, rollout: RolloutId, svc: Svc, caller: Caller, body: Start = None
) -> PlanOut:
    """Keep the flag's configuration as the base to restore, and serve the first stage
    (``enable: true`` turns the flag on if it is off)."""
    enable = body is not None and body.enable
    view = svc.rollouts.start(caller, project, rollout, _comment(body), enable=enable)
    return plan_out(view)


@router.post("/rollouts/{rollout}/pause")
def pause_rollout(
    project: str,
    rollout: RolloutId,
    svc: Svc,
    caller: Caller,
    body: Command = None,
) -> PlanOut:
    """Stop advancing; gates still roll a paused plan back on a regression."""
    view = svc.rollouts.pause(caller, project, rollout, _comment(body))
    return plan_out(view)


@router.post("/rollouts/{rollout}/resume")
def resume_rollout(
    project: str,
    rollout: RolloutId,
    svc: Svc,
    caller: Caller,
    body: Command = None,
) -> PlanOut:
    view = svc.rollouts.resume(caller, project, rollout, _comment(body))
    return plan_out(view)


@router.post("/rollouts/{rollout}/advance")
def advance_rollout(
    project: str,
    rollout: RolloutId,
    svc: Svc,
    caller: Caller,
    body: Command = None,
) -> PlanOut:
    """Go to the next stage now (also approves a stage waiting for approval)."""
    view = svc.rollouts.advance(caller, project, rollout, _comment(body))
    return plan_out(view)


@router.post("/rollouts/{rollout}/abort")
def abort_rollout(
    project: str,
    rollout: RolloutId,
    svc: Svc,
    caller: Caller,
    body: Command = None,
) -> PlanOut:
    """Stop for good; a started plan's flag gets its base configuration back."""
    view = svc.rollouts.abort(caller, project, rollout, _comment(body))
    return plan_out(view)
