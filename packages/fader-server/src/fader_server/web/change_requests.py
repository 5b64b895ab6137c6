"""Change requests in the console: the list, one request's page (proposal, each operation's
diff in words and in detail, the impact preview, the reviews timeline, and the actions), the
review, update and apply forms, and the scheduled changes.

Which buttons a page shows follows the change-request service's rules (approvers named by the
policy and never the author, editors apply, the author or an admin cancels), but only to spare
people a refusal: every action goes through the service, which decides again. An apply whose
bases moved is refused by the service, which marks the request "needs update"; the page then
says what moved and offers the author the update against the current versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from fader_server.errors import InvalidInputError, InvalidStateError, NotFoundError
from fader_server.services.access import Role
from fader_server.services.change_requests.impact import Impact
from fader_server.services.change_requests.operations import describe
from fader_server.services.change_requests.policy import roles_text
from fader_server.services.change_requests.service import ChangeRequestView, Verdict
from fader_server.services.environment_compare import FieldChange, field_changes
from fader_server.storage.ports import JSON
from fader_server.storage.ports.change_requests import OPEN_STATUSES, ChangeRequest
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors, sentence
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
RequestId = Annotated[int, Path(ge=1, le=2**62)]
PAGE_SIZE = 50
MAX_BODY = 5_000
FILTERS = {
    "open": ("Open", OPEN_STATUSES),
    "applied": ("Applied", ("applied",)),
    "rejected": ("Rejected or cancelled", ("rejected", "cancelled", "apply_failed")),
    "all": ("All", None),
}
STATUS_TEXT = {
    "open": "Open: waiting for approvals",
    "approved": "Approved: ready to apply",
    "needs_update": "Needs update: a base moved",
    "applied": "Applied",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
    "apply_failed": "Apply failed: a base moved at its scheduled time",
}
REVIEW_TEXT = {
    "comment": "commented",
    "approve": "approved",
    "reject": "rejected",
    "updated": "updated the request (earlier approvals no longer count)",
}
_FINISHED = ("applied", "rejected", "cancelled")


@dataclass(frozen=True, slots=True)
class OperationView:
    """One operation as the page shows it: what it changes, its changes in words (flag
    configurations), and its exact diff."""

    target: str
    kind: str
    base_version: int
    source: str | None
    summary: tuple[FieldChange, ...]
    diff: list[JSON]


@dataclass(frozen=True, slots=True)
class Actions:
    """Which controls the caller gets on a request's page."""

    review: bool
    apply: bool
    cancel: bool
    update: bool
    why_not_review: str


def operations_of(view: ChangeRequestView) -> list[OperationView]:
    out = []
    for op, diff in zip(view.request.operations, view.diffs, strict=True):
        summary: tuple[FieldChange, ...] = ()
        if op["kind"] in ("flag_config", "rollout_start") and op.get("before") and op.get("after"):
            summary = field_changes(op["before"], op["after"])
        out.append(
            OperationView(
                describe(op), op["kind"], op["base_version"], op.get("source"), summary, diff
            )
        )
    return out


def _is_author(session: Session, request: ChangeRequest) -> bool:
    principal = session.principal
    if principal.user_id is not None and request.author_user_id is not None:
        return principal.user_id == request.author_user_id
    return principal.actor == request.author


_STALE = ("needs_update", "apply_failed")


def actions_for(session: Session, view: ProjectView, found: ChangeRequestView) -> Actions:
    request = found.request
    open_ = request.status in OPEN_STATUSES
    author = _is_author(session, request)
    allowed = {r for req in found.requirements for r in req.approver_roles}
    role_ok = view.role.label in allowed if allowed else view.role >= Role.EDITOR
    why = ""
    if open_ and author:
        why = "You proposed this request: someone else reviews it."
    elif open_ and not role_ok:
        who = roles_text(sorted(allowed)) if allowed else "editor or admin"
        why = f"Approving or rejecting it takes the {who} role; you are {view.role.label}."
    return Actions(
        review=open_ and not author and role_ok,
        apply=request.status == "approved" and view.role >= Role.EDITOR,
        cancel=request.status not in _FINISHED and (author or view.role >= Role.ADMIN),
        # Only where updating changes something: a base moved (known, or seen on this page).
        update=author
        and (request.status in _STALE or (bool(found.moved) and request.status in OPEN_STATUSES)),
        why_not_review=why,
    )


def _list_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    chosen: str,
    before: int | None,
) -> Response:
    label, statuses = FILTERS[chosen]
    found = svc.change_requests.list_requests(
        session.principal,
        view.project.key,
        limit=PAGE_SIZE,
        before_id=before,
        statuses=statuses,
    )
    older = None
    if len(found) == PAGE_SIZE:
        older = view.href("change-requests", status=chosen, before=found[-1].id)
    return render(
        request,
        "change_requests/list.html",
        {
            "session": session,
            "view": view,
            "section": "change-requests",
            "title": "Change requests",
            "requests": found,
            "filters": [(k, v[0]) for k, v in FILTERS.items()],
            "chosen": chosen,
            "chosen_label": label,
            "status_text": STATUS_TEXT,
            "targets": {r.id: [describe(op) for op in r.operations] for r in found},
            "older": older,
        },
    )


@router.get("/projects/{project}/change-requests")
def change_requests(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    status: Param = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    chosen = status if status in FILTERS else "open"
    return _list_page(request, svc, session, view, chosen, before)


def request_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    request_id: int,
    *,
    errors: FieldErrors | None = None,
    comment: str = "",
    status: int = 200,
) -> Response:
    found = svc.change_requests.get(session.principal, view.project.key, request_id)
    impact: Impact | None = None
    if found.request.status not in _FINISHED:
        # what it would change is moot once it is finished: the preview is for deciding
        impact = svc.change_requests.preview_impact(session.principal, view.project.key, request_id)
    return render(
        request,
        "change_requests/detail.html",
        {
            "session": session,
            "view": view,
            "section": "change-requests",
            "title": f"Change request #{request_id}: {found.request.title}",
            "found": found,
            "cr": found.request,
            "operations": operations_of(found),
            "impact": impact,
            "actions": actions_for(session, view, found),
            "status_text": STATUS_TEXT,
            "review_text": REVIEW_TEXT,
            "errors": errors,
            "comment": comment,
            "base": view.href(f"change-requests/{request_id}"),
        },
        status=status,
    )


@router.get("/projects/{project}/change-requests/{request_id}")
def change_request(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    request_id: RequestId,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    return request_page(request, svc, session, view, request_id)


@router.post("/projects/{project}/change-requests/{request_id}/update")
def update_request(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    request_id: RequestId,
) -> Response:
    """Bring a request up to date as proposed: given no new operations, the service resolves
    the request's own changes again on the current versions and discards the approvals. The
    version read with the page guards against updating a request someone changed meanwhile;
    a conflict or a refusal is the console's usual error page. Registered before the generic
    actions so that "update" is not taken for one of them."""
    view = frame.load(svc, session, project, form.text("env") or None)
    version = form.text("version")
    expected = (
        int(version) if version.isascii() and version.isdigit() and len(version) <= 18 else None
    )
    svc.change_requests.update(session.principal, project, request_id, expected_version=expected)
    return redirect(
        request,
        view.href(f"change-requests/{request_id}"),
        f"Updated change request #{request_id} against the current versions.",
    )


_DONE = {
    "comment": "Added your comment to change request #{id}.",
    "approve": "Approved change request #{id}.",
    "reject": "Rejected change request #{id}.",
    "apply": "Applied change request #{id}: its changes are live.",
    "cancel": "Cancelled change request #{id}.",
}


@router.post("/projects/{project}/change-requests/{request_id}/{action}")
def act(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    request_id: RequestId,
    action: str,
) -> Response:
    """Comment, approve, reject, apply or cancel; a refusal that the person can act on (an
    empty comment, a base that moved, a state that changed) comes back on the request's page
    with the message; a permission refusal is the usual 403 page."""
    view = frame.load(svc, session, project, form.text("env") or None)
    if action not in _DONE:
        raise NotFoundError(f"change requests have no action '{action}'")
    body = form.get("body").strip()
    errors = FieldErrors()
    if len(body) > MAX_BODY:
        errors.add("review-body", f"Use at most {MAX_BODY} characters.")
    elif action == "comment" and not body:
        errors.add("review-body", "Write the comment first.")
    if not errors:
        try:
            _run(svc, session, project, request_id, action, body or None)
        except InvalidInputError as exc:
            errors.add("review-body", sentence(exc.detail))
        except InvalidStateError as exc:
            errors.add(None, sentence(exc.detail))
    if errors:
        status = 409 if any(f is None for f, _ in errors.summary) else 422
        return request_page(
            request, svc, session, view, request_id, errors=errors, comment=body, status=status
        )
    back = form.text("back")  # the scheduled-changes page cancels too, and goes back there
    if not back.startswith(f"/projects/{project}/"):
        back = view.href(f"change-requests/{request_id}")
    return redirect(request, back, _DONE[action].format(id=request_id))


def _run(
    svc: Svc, session: Session, project: str, request_id: int, action: str, body: str | None
) -> None:
    requests, principal = svc.change_requests, session.principal
    if action == "apply":
        requests.apply(principal, project, request_id, body)
    elif action == "cancel":
        requests.cancel(principal, project, request_id, body)
    else:
        verdict: Verdict = (
            "approve" if action == "approve" else "reject" if action == "reject" else "comment"
        )
        requests.review(principal, project, request_id, verdict, body)


@router.get("/projects/{project}/scheduled-changes")
def scheduled_changes(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    """Requests waiting for their time, earliest first, each with its cancel button."""
    view = frame.load(svc, session, project, env)
    found = svc.change_requests.list_requests(session.principal, project, limit=500, scheduled=True)
    found = sorted(found, key=lambda r: (r.apply_at or r.created_at, r.id))
    return render(
        request,
        "change_requests/scheduled.html",
        {
            "session": session,
            "view": view,
            "section": "change-requests",
            "title": "Scheduled changes",
            "requests": found,
            "status_text": STATUS_TEXT,
            "targets": {r.id: [describe(op) for op in r.operations] for r in found},
            "can_cancel": {r.id: _is_author(session, r) or view.is_admin for r in found},
        },
    )
