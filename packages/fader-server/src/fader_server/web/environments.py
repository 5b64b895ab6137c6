"""A project's environments in the console: the list, creating one, and each one's settings
(name, protected, bucketing).

Every project member sees the list and each environment's settings; only project admins get
the forms, and the service checks the admin role again on every write (a viewer posting the
form anyway gets its 403). An edit carries the version it was opened at, so it never
overwrites a concurrent change unseen: the service's compare-and-swap refuses it and the page
says so.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import AlreadyExistsError, InvalidInputError, VersionConflictError
from fader_server.services.change_requests import policy
from fader_server.storage.ports import JSON, Resource
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors, Form, sentence
from fader_server.web.frame import ProjectView
from fader_server.web.projects import KEY_HINT, key_problem
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
BUCKETING = (
    ("v2", "v2: flagd's fractional v2 (Fader's default)"),
    ("v3", "v3: flagd's fractional v3 (flagd providers from 0.6)"),
)
MAX_NAME = 200
MAX_COMMENT = 2000
ROLES = tuple((name, name) for name in policy.ROLE_NAMES)
_POLICY_FIELDS = {
    "required": "cr-required",
    "approvals": "cr-approvals",
    "approver_roles": "cr-approver-roles",
    "emergency_roles": "cr-emergency-roles",
}


def policy_text(found: policy.Policy) -> str:
    """The policy in words, for tables and summaries (never by colour or icon alone)."""
    if not found.required:
        return "Not required"
    noun = "approval" if found.approvals == 1 else "approvals"
    return f"Required: {found.approvals} {noun} by {policy.roles_text(found.approver_roles)}"


def _policy(form: Form, protected: bool, errors: FieldErrors) -> JSON:
    """The change-request policy from the form, validated by the policy's own parser (so the
    console and the API accept exactly the same policies); its problems go to their fields."""
    raw: JSON = {
        "required": form.checked("cr-required"),
        "approver_roles": [v for k, v in form.items if k == "cr-approver-roles"],
        "emergency_roles": [v for k, v in form.items if k == "cr-emergency-roles"],
    }
    try:
        raw["approvals"] = int(form.text("cr-approvals") or "1")
    except ValueError:
        errors.add("cr-approvals", "Enter a whole number of approvals.")
        raw["approvals"] = 1
    try:
        return policy.parse(raw, protected=protected)
    except InvalidInputError as exc:
        _service_problems(errors, exc)
        return {**raw, "approvals": raw["approvals"]}


def _service_problems(errors: FieldErrors, exc: InvalidInputError) -> None:
    """The service's refusal next to the policy field it names (else in the summary)."""
    for problem in exc.problems:
        name = problem.path.rsplit("/", 1)[-1]
        errors.add(_POLICY_FIELDS.get(name), sentence(problem.message))
    if not exc.problems:
        errors.add(None, sentence(exc.detail))


def _settings(form: Form, errors: FieldErrors) -> JSON:
    """Name, protected, bucketing and the change-request policy from the form, each checked
    like the API checks them."""
    name = form.text("name")
    bucketing = form.text("bucketing") or "v2"
    if not name:
        errors.add("env-name", "Enter a name for the environment.")
    elif len(name) > MAX_NAME:
        errors.add("env-name", f"Use at most {MAX_NAME} characters.")
    if bucketing not in dict(BUCKETING):
        errors.add("env-bucketing", "Choose v2 or v3.")
    if len(form.text("comment")) > MAX_COMMENT:
        errors.add("env-comment", f"Use at most {MAX_COMMENT} characters.")
    protected = form.checked("protected")
    return {
        "name": name,
        "protected": protected,
        "bucketing": bucketing,
        "change_requests": _policy(form, protected, errors),
    }


def _list_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    *,
    errors: FieldErrors | None = None,
    values: JSON | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "environments/list.html",
        {
            "session": session,
            "view": view,
            "section": "environments",
            "title": "Environments",
            "environments": [
                (e, policy_text(policy.of(e.data)))
                for e in svc.projects.environments(session.principal, view.project.key)
            ],
            "bucketing": BUCKETING,
            "roles": ROLES,
            "errors": errors,
            "values": values or {"bucketing": "v2"},
            "key_hint": KEY_HINT,
        },
        status=status,
    )


def _edit_page(
    request: Request,
    session: Session,
    view: ProjectView,
    env: Resource,
    *,
    errors: FieldErrors | None = None,
    values: JSON | None = None,
    version: int | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "environments/edit.html",
        {
            "session": session,
            "view": view,
            "section": "environments",
            "title": f"Environment {env.data.get('name') or env.key}",
            "environment": env,
            "values": values or env.data,
            "version": env.version if version is None else version,
            "policy": policy_text(policy.of(env.data)),
            "bucketing": BUCKETING,
            "roles": ROLES,
            "errors": errors,
        },
        status=status,
    )


@router.get("/projects/{project}/environments")
def environments(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    return _list_page(request, svc, session, frame.load(svc, session, project, env))


@router.post("/projects/{project}/environments")
def create_environment(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    key = form.text("key")
    errors = FieldErrors()
    if problem := key_problem(key, "environment"):
        errors.add("env-key", problem)
    data = _settings(form, errors)
    if not errors:
        try:
            svc.projects.create_environment(
                session.principal, project, key, data, form.text("comment") or None
            )
        except AlreadyExistsError as exc:
            errors.add("env-key", sentence(exc.detail))
        except InvalidInputError as exc:
            _service_problems(errors, exc)
    if errors:
        values = {**data, "key": key, "comment": form.text("comment")}
        return _list_page(request, svc, session, view, errors=errors, values=values, status=422)
    protected = (
        " It is protected: changing flags there takes the admin role." if data["protected"] else ""
    )
    return redirect(
        request,
        view.href("environments"),
        f"Created environment {key} ({data['name']}).{protected}",
    )


@router.get("/projects/{project}/environments/{environment}")
def environment_page(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    environment: str,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    found = svc.projects.environment(session.principal, project, environment)
    return _edit_page(request, session, view, found)


@router.post("/projects/{project}/environments/{environment}")
def update_environment(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    environment: str,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    found = svc.projects.environment(session.principal, project, environment)
    errors = FieldErrors()
    data = _settings(form, errors)
    try:
        version = int(form.text("version"))
    except ValueError:
        version = -1  # matches no version: refused as a conflict below
    values = {**found.data, **data, "comment": form.text("comment")}
    if not errors:
        try:
            saved = svc.projects.update_environment(
                session.principal,
                project,
                environment,
                {k: v for k, v in values.items() if k != "comment"},
                version,
                form.text("comment") or None,
            )
        except InvalidInputError as exc:
            _service_problems(errors, exc)
        except VersionConflictError:
            errors.add(
                None,
                f"Someone changed {environment} since you opened this page: its settings below "
                "are the current ones. Make your change again and save.",
            )
            return _edit_page(request, session, view, found, errors=errors, status=409)
    if errors:
        return _edit_page(
            request, session, view, found, errors=errors, values=values, version=version, status=422
        )
    return redirect(
        request,
        view.href("environments"),
        f"Saved environment {environment} (version {saved.version}).",
    )
