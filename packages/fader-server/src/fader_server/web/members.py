"""A project's members and their roles; instance administrators can also create users here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import AlreadyExistsError, NotFoundError
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors
from fader_server.web.frame import ProjectView
from fader_server.web.projects import key_problem
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
ROLES = (
    ("viewer", "Viewer: sees everything, changes nothing"),
    ("editor", "Editor: changes flags and segments outside protected environments"),
    ("admin", "Admin: everything, including protected environments, tokens and members"),
)
MIN_PASSWORD = 12


def _page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    *,
    errors: FieldErrors | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    members = svc.projects.members(session.principal, view.project.key)
    return render(
        request,
        "members.html",
        {
            "session": session,
            "view": view,
            "section": "members",
            "title": "Members",
            "members": sorted(members, key=lambda m: m[0].username),
            "roles": ROLES,
            "errors": errors,
            "values": values or {"role": "viewer", "new-role": "viewer"},
            "min_password": MIN_PASSWORD,
        },
        status=status,
    )


@router.get("/projects/{project}/members")
def members(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    return _page(request, svc, session, frame.load(svc, session, project, env))


@router.post("/projects/{project}/members")
def set_member(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    """Add a member, or change a member's role (the same service call)."""
    view = frame.load(svc, session, project, form.text("env") or None)
    username, role = form.text("username"), form.text("role")
    errors = FieldErrors()
    field = form.text("field") or "member-username"
    if not username:
        errors.add(field, "Enter the username of an existing user.")
    if role not in dict(ROLES):
        errors.add("member-role", "Choose a role.")
    if not errors:
        try:
            svc.projects.set_member(session.principal, project, username, role, None)
        except NotFoundError as exc:
            errors.add(field, exc.detail[:1].upper() + exc.detail[1:] + ".")
    if errors:
        values = {"username": username, "role": role, "new-role": "viewer"}
        return _page(request, svc, session, view, errors=errors, values=values, status=422)
    return redirect(request, view.href("members"), f"{username} is now {role} in this project.")


@router.post("/projects/{project}/members/{username}/remove")
def remove_member(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    username: str,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    if form.get("confirmed") != "yes":
        return render(
            request,
            "confirm.html",
            {
                "session": session,
                "view": view,
                "section": "members",
                "title": f"Remove {username} from {view.project.name}?",
                "explanation": f"{username} will no longer see this project. Their user "
                "account and their roles in other projects stay.",
                "action": request.url.path,
                "fields": {"env": view.env.key},
                "confirm_label": f"Remove {username}",
                "danger": True,
                "cancel": view.href("members"),
                "with_comment": False,
            },
        )
    svc.projects.remove_member(session.principal, project, username, None)
    return redirect(request, view.href("members"), f"Removed {username} from this project.")


@router.post("/projects/{project}/users")
def create_user(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    """Instance administrators: create a user and add them to this project in one step."""
    view = frame.load(svc, session, project, form.text("env") or None)
    username, password, role = (
        form.text("new-username"),
        form.get("new-password"),
        form.text("new-role"),
    )
    errors = FieldErrors()
    if problem := key_problem(username, "user"):
        errors.add("new-username", problem.replace("key", "username"))
    if len(password) < MIN_PASSWORD:
        errors.add("new-password", f"Use at least {MIN_PASSWORD} characters.")
    elif len(password) > 200:
        errors.add("new-password", "Use at most 200 characters.")
    if role not in dict(ROLES):
        errors.add("new-role", "Choose a role.")
    if not errors:
        try:
            svc.identity.create_user(session.principal, username, password)
        except AlreadyExistsError:
            errors.add("new-username", f"The username “{username}” is taken.")
    if errors:
        values = {"new-username": username, "new-role": role, "role": "viewer"}
        return _page(request, svc, session, view, errors=errors, values=values, status=422)
    svc.projects.set_member(session.principal, project, username, role, None)
    return redirect(
        request,
        view.href("members"),
        f"Created user {username} and made them {role} in this project. Give them their "
        "password through a safe channel.",
    )
