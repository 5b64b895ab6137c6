"""Incidents that lead to fixes: open (by hand; rollbacks open theirs), acknowledge, resolve,
reopen, the post-mortem and its action items, and the project's list of what is still to do.

Reads need the viewer role, writes the editor role. A step that does not apply to the
incident's state is a 409 ``invalid-state`` problem saying which state it is in. Responses
carrying an incident or an item carry its ``ETag``; ``If-Match`` is optional on the lifecycle
steps and on marking an item done (412 when stale) and required on the post-mortem and on
editing an item (428 without). See ``docs/incidents.md``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, Response, status

from fader_server.api import pagination, problems
from fader_server.api.incident_schemas import (
    ActionItemIn,
    ActionItemOut,
    ActionItemPage,
    ActionItemPatch,
    IncidentCommandIn,
    IncidentDetail,
    IncidentIn,
    IncidentOut,
    IncidentPage,
    PostmortemIn,
    ResolveIn,
)
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import MAX_INTEGER
from fader_server.api.security import Caller, IfMatch, Svc
from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.services.incidents.records import IncidentView, item_state
from fader_server.services.versioning import etag
from fader_server.storage.ports import Incident
from fader_server.storage.ports.incidents import ActionItem, ItemCursor

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["incidents"], responses=problems.API_ERRORS
)

IncidentId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="incident id")]
ItemId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="action item id")]
Command = Annotated[IncidentCommandIn | None, Body()]


def incident_out(incident: Incident) -> IncidentOut:
    return IncidentOut(
        id=incident.id,
        title=incident.title,
        severity=incident.severity,  # type: ignore[arg-type]  # one of SEVERITIES, stored
        state=incident.state,  # type: ignore[arg-type]  # one of STATES, stored
        flag=incident.flag,
        environment=incident.environment,
        description=incident.description,
        opened_by=incident.opened_by,
        opened_at=incident.opened_at,
        acknowledged_by=incident.acknowledged_by,
        acknowledged_at=incident.acknowledged_at,
        resolved_by=incident.resolved_by,
        resolved_at=incident.resolved_at,
        resolution=incident.resolution,
        summary=incident.summary,
        rollout=incident.plan_id,
        stage=incident.stage,
        stage_name=incident.stage_name,
        metric=incident.metric,
        evidence=incident.evidence,
        timeline=incident.timeline,
        version=incident.version,
        updated_at=incident.updated_at,
    )


def item_out(item: ActionItem, state: str) -> ActionItemOut:
    return ActionItemOut(
        id=item.id,
        incident=item.incident_id,
        title=item.title,
        owner=item.owner,
        due_on=item.due_on,
        status=item.status,  # type: ignore[arg-type]  # open or done, stored
        state=state,  # type: ignore[arg-type]  # records.item_state
        done_by=item.done_by,
        done_at=item.done_at,
        escalated_at=item.overdue_at,
        created_by=item.created_by,
        created_at=item.created_at,
        updated_at=item.updated_at,
        version=item.version,
    )


def detail_out(view: IncidentView, response: Response) -> IncidentDetail:
    response.headers["ETag"] = etag(view.incident.version)
    return IncidentDetail(
        **incident_out(view.incident).model_dump(),
        action_items=[item_out(i, view.item_state(i)) for i in view.items],
        events=[e.as_dict() for e in view.timeline],
    )


def _item_response(svc: Svc, item: ActionItem, response: Response) -> ActionItemOut:
    response.headers["ETag"] = etag(item.version)
    return item_out(item, item_state(item, svc.incidents.clock()))


def _comment(body: IncidentCommandIn | None) -> str | None:
    return None if body is None else body.comment


def _item_cursor(cursor: str | None) -> ItemCursor | None:
    key = pagination.decode(cursor)
    if key is None:
        return None
    day, _, item_id = key.partition("/")
    try:
        return ItemCursor(date.fromisoformat(day), int(item_id))
    except ValueError:
        raise InvalidInputError(
            "the cursor is not one this server issued",
            [FieldProblem("/query/cursor", "not a valid cursor")],
        ) from None


# ---------------------------------------------------------------- incidents
@router.get("/incidents")
def list_incidents(
    project: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    rollout: Annotated[
        int | None, Query(ge=1, le=MAX_INTEGER, description="only this plan's")
    ] = None,
    state: Annotated[
        Literal["open", "acknowledged", "resolved"] | None, Query(description="only these")
    ] = None,
) -> IncidentPage:
    """Newest first."""
    found = svc.incidents.list_incidents(
        caller,
        project,
        limit=limit,
        before_id=pagination.decode_int(cursor),
        plan_id=rollout,
        state=state,
    )
    return IncidentPage(
        items=[incident_out(i) for i in found],
        next_cursor=pagination.next_cursor([str(i.id) for i in found], limit),
    )


@router.post("/incidents", status_code=status.HTTP_201_CREATED)
def open_incident(
    project: str, body: IncidentIn, svc: Svc, caller: Caller, response: Response
) -> IncidentDetail:
    """Open an incident by hand (rollbacks open theirs by themselves)."""
    view = svc.incidents.open(
        caller,
        project,
        title=body.title,
        severity=body.severity,
        description=body.description,
        flag=body.flag,
        environment=body.environment,
    )
    return detail_out(view, response)


@router.get("/incidents/{incident}")
def get_incident(
    project: str, incident: IncidentId, svc: Svc, caller: Caller, response: Response
) -> IncidentDetail:
    """The incident, its action items, the evidence of its rollback and the whole timeline."""
    return detail_out(svc.incidents.get(caller, project, incident), response)


@router.post("/incidents/{incident}/acknowledge")
def acknowledge_incident(
    project: str,
    incident: IncidentId,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
    body: Command = None,
) -> IncidentDetail:
    """Someone is on it: open → acknowledged."""
    view = svc.incidents.acknowledge(
        caller, project, incident, expected=expected, comment=_comment(body)
    )
    return detail_out(view, response)


@router.post("/incidents/{incident}/resolve")
def resolve_incident(
    project: str,
    incident: IncidentId,
    body: ResolveIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> IncidentDetail:
    """Over, with what ended it: open or acknowledged → resolved."""
    view = svc.incidents.resolve(
        caller, project, incident, resolution=body.resolution, expected=expected,
        comment=body.comment,
    )  # fmt: skip
    return detail_out(view, response)


@router.post("/incidents/{incident}/reopen")
def reopen_incident(
    project: str,
    incident: IncidentId,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
    body: Command = None,
) -> IncidentDetail:
    """It is back: resolved → acknowledged (or open, if nobody had acknowledged it)."""
    view = svc.incidents.reopen(
        caller, project, incident, expected=expected, comment=_comment(body)
    )
    return detail_out(view, response)


@router.put("/incidents/{incident}/postmortem")
def update_postmortem(
    project: str,
    incident: IncidentId,
    body: PostmortemIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> IncidentDetail:
    """Replace the post-mortem's summary (``If-Match`` required)."""
    view = svc.incidents.update_postmortem(
        caller, project, incident, summary=body.summary, expected=expected
    )
    return detail_out(view, response)


# ------------------------------------------------------------- action items
@router.post("/incidents/{incident}/action-items", status_code=status.HTTP_201_CREATED)
def add_action_item(
    project: str,
    incident: IncidentId,
    body: ActionItemIn,
    svc: Svc,
    caller: Caller,
    response: Response,
) -> ActionItemOut:
    """Add one of the post-mortem's (at most three) action items."""
    item = svc.incidents.add_item(
        caller, project, incident, title=body.title, owner=body.owner, due_on=body.due_on
    )
    return _item_response(svc, item, response)


@router.patch("/incidents/{incident}/action-items/{item}")
def update_action_item(
    project: str,
    incident: IncidentId,
    item: ItemId,
    body: ActionItemPatch,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> ActionItemOut:
    """Change an open item's title, owner or due day (``If-Match`` required)."""
    written = svc.incidents.update_item(
        caller, project, incident, item, expected=expected, title=body.title, owner=body.owner,
        due_on=body.due_on,
    )  # fmt: skip
    return _item_response(svc, written, response)


@router.post("/incidents/{incident}/action-items/{item}/done")
def complete_action_item(
    project: str,
    incident: IncidentId,
    item: ItemId,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
    body: Command = None,
) -> ActionItemOut:
    """The fix is in: the item leaves the open and overdue lists."""
    written = svc.incidents.complete_item(
        caller, project, incident, item, expected=expected, comment=_comment(body)
    )
    return _item_response(svc, written, response)


@router.get("/action-items")
def list_action_items(
    project: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 100,
    cursor: Cursor = None,
    status: Annotated[
        Literal["open", "overdue", "done"] | None,
        Query(description="`open` includes the overdue ones; omit for all"),
    ] = None,
) -> ActionItemPage:
    """The project's action items across incidents, soonest due first."""
    found = svc.incidents.action_items(
        caller, project, status=status, limit=limit, after=_item_cursor(cursor)
    )
    now = svc.incidents.clock()
    keys = [f"{i.due_on.isoformat()}/{i.id}" for i in found]
    return ActionItemPage(
        items=[item_out(i, item_state(i, now)) for i in found],
        next_cursor=pagination.next_cursor(keys, limit),
    )
