"""The rules editor of a flag in one environment, and its "check as you type" endpoint.

Saving is :meth:`FlagService.put_config` with the version the form was opened at, so an edit
never overwrites someone else's change unseen. Checking is :meth:`FlagService.check_config`:
the same engine validation, without writing; the page's script posts the form there while
the user types and shows the messages next to the fields (and without JavaScript the
"Check" button does the same with a full page).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import JSONResponse, Response

from fader_server.errors import (
    ChangeRequestRequiredError,
    InvalidInputError,
    PermissionDeniedError,
    VersionConflictError,
)
from fader_server.services import documents
from fader_server.storage.ports import Resource
from fader_server.web import frame, rules_form
from fader_server.web.clauses import OPERATORS
from fader_server.web.forms import CheckedForm, FieldErrors, from_problems, pointer
from fader_server.web.frame import ProjectView
from fader_server.web.propose import propose_page
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.rules_form import ConfigForm
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
_PATH = "/projects/{project}/flags/{flag}/rules"


def _require_change(view: ProjectView) -> None:
    """Editing the rules takes the role to change them here, or, where the environment
    requires change requests, the role to propose (saving then proposes)."""
    if not view.can_change() and not view.can_propose():
        needed = "admin" if view.env.protected else "editor"
        raise PermissionDeniedError(
            f"changing the rules in {view.env.name} needs the {needed} role in project "
            f"'{view.project.key}'; you have {view.role.label}. Ask a project admin."
        )


def _editor(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    flag: Resource,
    config: ConfigForm,
    *,
    errors: FieldErrors | None = None,
    checked: bool = False,
    focus: str = "",
    status: int = 200,
) -> Response:
    principal = session.principal
    segments = svc.segments.search(
        principal, view.project.key, limit=documents.MAX_ENTITIES, after_key=None
    )
    others = [
        f.key
        for f in svc.flags.search(
            principal, view.project.key, limit=documents.MAX_ENTITIES, after_key=None
        )
        if f.key != flag.key
    ]
    return render(
        request,
        "flags/rules.html",
        {
            "session": session,
            "view": view,
            "section": "flags",
            "title": f"Rules of {flag.key} in {view.env.name}",
            "flag": flag,
            "variants": list(flag.data.get("variants") or {}),
            "form": config,
            "operators": OPERATORS,
            "segments": [s.key for s in segments],
            "other_flags": others,
            "errors": errors,
            "checked": checked,
            "focus": focus,
            "action": view.href(f"flags/{flag.key}/rules"),
            "check_url": view.href(f"flags/{flag.key}/rules/check"),
        },
        status=status,
    )


@router.get(_PATH)
def rules_editor(
    request: Request, svc: Svc, session: CurrentSession, project: str, flag: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    _require_change(view)
    found = svc.flags.get(session.principal, project, flag)
    config = svc.flags.get_config(session.principal, project, view.env.key, flag)
    variants = list(found.data.get("variants") or {})
    form = rules_form.from_config(config.data, config.version, variants)
    return _editor(request, svc, session, view, found, form)


@router.post(_PATH)
def save_rules(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str, flag: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    _require_change(view)
    found = svc.flags.get(session.principal, project, flag)
    variants = list(found.data.get("variants") or {})
    config, data, fields = rules_form.read(form, variants)
    action = form.get("action") or "save"
    if action not in ("save", "check"):
        segments = svc.segments.search(session.principal, project, limit=1, after_key=None)
        first = segments[0].key if segments else ""
        focus = rules_form.apply(config, action, variants, first)
        return _editor(request, svc, session, view, found, config, focus=focus)
    errors = FieldErrors()
    conflict = False
    try:
        if action == "check" or view.env.requires_requests:
            svc.flags.check_config(session.principal, project, view.env.key, flag, data)
            if action == "save":  # a direct save would be refused here: propose it instead
                return propose_page(request, svc, session, view, found, data, config.version)
        else:
            saved = svc.flags.put_config(
                session.principal,
                project,
                view.env.key,
                flag,
                data,
                config.version,
                config.comment or None,
            )
    except InvalidInputError as exc:
        from_problems(exc.problems, pointer("flags", flag), fields, errors)
    except ChangeRequestRequiredError:  # the policy came into force after the page loaded
        return propose_page(request, svc, session, view, found, data, config.version)
    except VersionConflictError:
        conflict = True
        errors.add(
            None,
            f"Someone changed the rules of {flag} in {view.env.name} since you opened this page. "
            "Open the rules again to see their change, then redo yours.",
        )
    if errors or action == "check":
        status = 409 if conflict else 422 if errors else 200
        return _editor(
            request, svc, session, view, found, config, errors=errors, checked=True, status=status
        )
    return redirect(
        request,
        view.href(f"flags/{flag}"),
        f"Saved the rules of {flag} in {view.env.name} (configuration version {saved.version}).",
    )


@router.post(_PATH + "/check")
def check_rules(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str, flag: str
) -> Response:
    """The engine's verdict on the form as it is now, as JSON for the page's script."""
    view = frame.load(svc, session, project, form.text("env") or None)
    found = svc.flags.get(session.principal, project, flag)
    _, data, fields = rules_form.read(form, list(found.data.get("variants") or {}))
    errors = FieldErrors()
    try:
        svc.flags.check_config(session.principal, project, view.env.key, flag, data)
    except InvalidInputError as exc:
        from_problems(exc.problems, pointer("flags", flag), fields, errors)
    return JSONResponse({"problems": errors.as_json()})
