"""Change requests and scheduled changes (docs/change-control.md).

Reads need the viewer role, proposing and applying the editor role, approving and rejecting a
role the affected environments' policies name (never the author), updating and cancelling the
author or an admin. A stale base at apply time is a 409 ``invalid-state`` problem and the
request becomes ``needs_update``; a direct write that a policy sends here is a 409
``change-request-required`` problem (``api/problems.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response, status

from fader_server.api import pagination, problems
from fader_server.api.change_request_schemas import (
    CancelIn,
    ChangeRequestIn,
    ChangeRequestOut,
    ChangeRequestPage,
    ChangeRequestSummary,
    ChangeRequestUpdate,
    CommentIn,
    ExampleOut,
    FlagImpactOut,
    ImpactOut,
    OperationOut,
    RequirementOut,
    ReviewIn,
    ReviewOut,
)
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import MAX_INTEGER
from fader_server.api.security import Caller, IfMatch, Svc
from fader_server.services.change_requests.impact import Impact
from fader_server.services.change_requests.operations import describe
from fader_server.services.change_requests.service import ChangeRequestView
from fader_server.services.versioning import etag
from fader_server.storage.ports.change_requests import ChangeRequest

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["change requests"], responses=problems.API_ERRORS
)
RequestId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="change request id")]
Review = Annotated[ReviewIn | None, Body()]
Cancel = Annotated[CancelIn | None, Body()]
StatusFilter = Literal[
    "open", "approved", "needs_update", "applied", "rejected", "cancelled", "apply_failed"
]


def summary_out(request: ChangeRequest) -> ChangeRequestSummary:
    return ChangeRequestSummary(
        id=request.id,
        title=request.title,
        author=request.author,
        status=request.status,
        targets=[describe(op) for op in request.operations],
        apply_at=request.apply_at,
        failure=request.failure,
        version=request.version,
        created_at=request.created_at,
        updated_at=request.updated_at,
    )


def impact_out(found: Impact) -> ImpactOut:
    return ImpactOut(
        source=found.source,
        contexts=found.contexts,
        flags=[
            FlagImpactOut(
                environment=f.environment,
                flag=f.flag,
                evaluated=f.evaluated,
                changed=f.changed,
                examples=[
                    ExampleOut(key=e.key, before=e.before, after=e.after) for e in f.examples
                ],
            )
            for f in found.flags
        ],
    )


def request_out(
    view: ChangeRequestView, response: Response, found: Impact | None = None
) -> ChangeRequestOut:
    request = view.request
    response.headers["ETag"] = etag(request.version)
    operations = [
        OperationOut(
            kind=op["kind"],
            target=describe(op),
            environment=op.get("environment"),
            flag=op.get("flag"),
            segment=op.get("segment"),
            rollout=op.get("rollout"),
            base_version=op["base_version"],
            source=op.get("source"),
            before=op["before"],
            after=op["after"],
            diff=diff,
        )
        for op, diff in zip(request.operations, view.diffs, strict=True)
    ]
    return ChangeRequestOut(
        **summary_out(request).model_dump(),
        proposal=request.proposal,
        applied_by=request.applied_by,
        operations=operations,
        reviews=[
            ReviewOut(
                id=r["id"],
                kind=r["kind"],
                actor=r["actor"],
                role=r.get("role"),
                body=r.get("body"),
                at=r["at"],
            )
            for r in request.reviews
        ],
        requirements=[
            RequirementOut(
                environment=r.environment,
                approvals=r.approvals,
                approver_roles=list(r.approver_roles),
                approved_by=list(r.approved_by),
                met=r.met,
                reasons=list(r.reasons),
            )
            for r in view.requirements
        ],
        affected=view.affected,
        moved=view.moved,
        contexts=len(request.contexts),
        impact=None if found is None else impact_out(found),
    )


def _operations(body: Any) -> list[dict[str, Any]]:
    """Operations as the use case takes them: definitions and configurations as stored."""
    found: list[dict[str, Any]] = []
    for op in body:
        raw = op.model_dump(exclude_none=True, exclude={"config", "definition"})
        if getattr(op, "config", None) is not None:
            raw["config"] = op.config.data()
        if getattr(op, "definition", None) is not None:
            raw["definition"] = op.definition.data()
        found.append(raw)
    return found


@router.get("/change-requests")
def list_change_requests(
    project: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    status_: Annotated[list[StatusFilter] | None, Query(alias="status", max_length=7)] = None,
    scheduled: Annotated[bool, Query(description="only those with an apply_at to come")] = False,
) -> ChangeRequestPage:
    """Newest first."""
    found = svc.change_requests.list_requests(
        caller,
        project,
        limit=limit,
        before_id=pagination.decode_int(cursor),
        statuses=status_,
        scheduled=scheduled,
    )
    return ChangeRequestPage(
        items=[summary_out(r) for r in found],
        next_cursor=pagination.next_cursor([str(r.id) for r in found], limit),
    )


@router.post("/change-requests", status_code=status.HTTP_201_CREATED)
def propose(
    project: str, body: ChangeRequestIn, svc: Svc, caller: Caller, response: Response
) -> ChangeRequestOut:
    """Propose a change instead of writing it; see docs/change-control.md."""
    view = svc.change_requests.propose(
        caller,
        project,
        title=body.title,
        proposal=body.proposal.model_dump(),
        operations_in=_operations(body.operations),
        contexts=body.contexts,
        apply_at=body.apply_at,
    )
    return request_out(view, response)


@router.get("/change-requests/{request_id}")
def get_change_request(
    project: str,
    request_id: RequestId,
    svc: Svc,
    caller: Caller,
    response: Response,
    impact: Annotated[bool, Query(description="include the impact preview")] = True,
) -> ChangeRequestOut:
    """The request with each operation's diff, what its policies ask, and (by default) its
    impact on a sample of contexts."""
    view = svc.change_requests.get(caller, project, request_id)
    found = svc.change_requests.preview_impact(caller, project, request_id) if impact else None
    return request_out(view, response, found)


@router.put("/change-requests/{request_id}")
def update_change_request(
    project: str,
    request_id: RequestId,
    body: ChangeRequestUpdate,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> ChangeRequestOut:
    """Update (the author or an admin; `If-Match` with the request's ETag)."""
    view = svc.change_requests.update(
        caller,
        project,
        request_id,
        expected_version=expected,
        title=body.title,
        proposal=None if body.proposal is None else body.proposal.model_dump(),
        operations_in=None if body.operations is None else _operations(body.operations),
        contexts=body.contexts,
        apply_at=body.apply_at,
        clear_apply_at=body.unschedule,
    )
    return request_out(view, response)


@router.post("/change-requests/{request_id}/comments")
def comment(
    project: str,
    request_id: RequestId,
    body: CommentIn,
    svc: Svc,
    caller: Caller,
    response: Response,
) -> ChangeRequestOut:
    view = svc.change_requests.review(caller, project, request_id, "comment", body.body)
    return request_out(view, response)


@router.post("/change-requests/{request_id}/approve")
def approve(
    project: str,
    request_id: RequestId,
    svc: Svc,
    caller: Caller,
    response: Response,
    body: Review = None,
) -> ChangeRequestOut:
    text = None if body is None else body.body
    view = svc.change_requests.review(caller, project, request_id, "approve", text)
    return request_out(view, response)


@router.post("/change-requests/{request_id}/reject")
def reject(
    project: str,
    request_id: RequestId,
    svc: Svc,
    caller: Caller,
    response: Response,
    body: Review = None,
) -> ChangeRequestOut:
    text = None if body is None else body.body
    view = svc.change_requests.review(caller, project, request_id, "reject", text)
    return request_out(view, response)


@router.post("/change-requests/{request_id}/apply")
def apply(
    project: str,
    request_id: RequestId,
    svc: Svc,
    caller: Caller,
    response: Response,
    body: Cancel = None,
) -> ChangeRequestOut:
    """Apply an approved request now, in one transaction; 409 when a base moved."""
    note = None if body is None else body.comment
    view = svc.change_requests.apply(caller, project, request_id, note)
    return request_out(view, response)


@router.post("/change-requests/{request_id}/cancel")
def cancel(
    project: str,
    request_id: RequestId,
    svc: Svc,
    caller: Caller,
    response: Response,
    body: Cancel = None,
) -> ChangeRequestOut:
    note = None if body is None else body.comment
    view = svc.change_requests.cancel(caller, project, request_id, note)
    return request_out(view, response)


@router.get("/scheduled-changes", tags=["scheduled changes"])
def scheduled_changes(
    project: str, svc: Svc, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> ChangeRequestPage:
    """Requests with an apply_at still to come (open, approved or needing an update)."""
    found = svc.change_requests.list_requests(
        caller, project, limit=limit, before_id=pagination.decode_int(cursor), scheduled=True
    )
    return ChangeRequestPage(
        items=[summary_out(r) for r in found],
        next_cursor=pagination.next_cursor([str(r.id) for r in found], limit),
    )


@router.get("/flags/{flag}/scheduled-changes", tags=["scheduled changes"])
def flag_scheduled_changes(
    project: str, flag: str, svc: Svc, caller: Caller
) -> list[ChangeRequestSummary]:
    """What is scheduled to change this flag, earliest first."""
    return [summary_out(r) for r in svc.change_requests.scheduled_for_flag(caller, project, flag)]
