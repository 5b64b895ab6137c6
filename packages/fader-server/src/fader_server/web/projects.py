"""The project list (and creating a project), and switching project and environment."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import AlreadyExistsError, NotFoundError
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

KEY = re.compile(r"[a-z0-9][a-z0-9._-]*")
KEY_HINT = "Lowercase letters, digits, '.', '_' and '-'; it cannot be changed later."
Param = Annotated[str | None, Query(max_length=200)]


def key_problem(key: str, noun: str) -> str | None:
    if not key:
        return f"Enter a key for the {noun}."
    if len(key) > 128 or not KEY.fullmatch(key):
        return (
            f"'{key}' is not a valid key: start with a lowercase letter or digit and use only "
            "a-z, 0-9, '.', '_' and '-' (at most 128 characters)."
        )
    return None


@router.get("/")
def home(request: Request, session: CurrentSession) -> Response:
    return redirect(request, "/projects")


def _projects_page(
    request: Request,
    svc: Svc,
    session: Session,
    *,
    errors: FieldErrors | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    projects = svc.projects.list_projects(
        session.principal, limit=frame.MAX_PROJECTS, after_key=None
    )
    return render(
        request,
        "projects.html",
        {
            "session": session,
            "view": None,
            "title": "Projects",
            "projects": projects,
            "can_create": session.principal.instance_admin,
            "errors": errors,
            "values": values or {},
            "key_hint": KEY_HINT,
        },
        status=status,
    )


@router.get("/projects")
def projects(request: Request, svc: Svc, session: CurrentSession) -> Response:
    return _projects_page(request, svc, session)


@router.post("/projects")
def create_project(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm
) -> Response:
    key, name = form.text("key"), form.text("name")
    errors = FieldErrors()
    problem = key_problem(key, "project")
    if problem:
        errors.add("project-key", problem)
    if not name:
        errors.add("project-name", "Enter a name for the project.")
    if not errors:
        try:
            svc.projects.create(session.principal, key, name, comment="created in the console")
        except AlreadyExistsError as exc:
            errors.add("project-key", exc.detail[:1].upper() + exc.detail[1:] + ".")
    if errors:
        values = {"key": key, "name": name}
        return _projects_page(request, svc, session, errors=errors, values=values, status=422)
    return redirect(
        request,
        f"/projects/{key}",
        f"Created project {key} with development, staging and production (protected).",
    )


@router.get("/go")
def switch(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: Param = None,
    env: Param = None,
    section: Param = None,
) -> Response:
    """The header's project and environment switcher (a GET form, so it works without JS)."""
    if not project:
        return redirect(request, "/projects")
    try:
        view = frame.load(svc, session, project, env)
    except NotFoundError:
        view = frame.load(svc, session, project, None)  # the environment is not in this project
    target = section if section in frame.SECTIONS and section != "dashboard" else ""
    return redirect(request, view.href(target))
