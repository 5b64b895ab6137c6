""" "Propose as change request": a flag's edited rules in an environment that requires change
requests, turned into a request instead of a direct save.

The rules editor sends people here when they save in such an environment (the direct write
would be refused). The page shows the edited configuration against the current one, in words
and as an exact diff, and asks for a title, a proposal and, optionally, a time to apply it. The
configuration travels in a hidden field as JSON, with the version the editor was opened at,
which becomes the operation's base: if someone changes the rules meanwhile, proposing (or
later applying) is refused rather than overwriting their change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server import strict_json
from fader_server.errors import InvalidInputError, PermissionDeniedError, VersionConflictError
from fader_server.services import versioning
from fader_server.services.environment_compare import field_changes
from fader_server.storage.ports import JSON, Resource
from fader_server.web import frame, proposal_form
from fader_server.web.flag_page import rules_in_words, serves
from fader_server.web.forms import CheckedForm, FieldErrors, sentence
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
APPLY_AT_FORMAT = "%Y-%m-%d %H:%M"
APPLY_AT_HINT = "Optional. In UTC, as 2031-05-01 09:30; empty: apply it once approved, by hand."


def propose_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    flag: Resource,
    data: JSON,
    version: int,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    """The proposal form for configuration `data` of `flag` in the view's environment, based
    on configuration version `version`."""
    current = svc.flags.get_config(session.principal, view.project.key, view.env.key, flag.key)
    return render(
        request,
        "flags/propose.html",
        {
            "session": session,
            "view": view,
            "section": "flags",
            "title": f"Propose a change to {flag.key} in {view.env.name}",
            "flag": flag,
            "summary": field_changes(current.data, data),
            "diff": versioning.diff(current.data, data),
            "rules": rules_in_words(data),
            "default_serves": serves(data.get("default") or {}),
            "config_json": json.dumps(data, ensure_ascii=False, sort_keys=True),
            "version": version,
            "current_version": current.version,
            "values": values or {},
            "sections": proposal_form.SECTIONS,
            "apply_at_hint": APPLY_AT_HINT,
            "errors": errors,
            "action": view.href(f"flags/{flag.key}/propose"),
        },
        status=status,
    )


@router.get("/projects/{project}/flags/{flag}/propose")
def propose_turning_on(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    flag: str,
    env: Param = None,
) -> Response:
    """The kill switch's "Turn on" where change requests are required: the current
    configuration, switched on, as a proposal (turning off stays one action: the emergency
    path)."""
    view = frame.load(svc, session, project, env)
    if not view.can_propose():
        raise PermissionDeniedError(
            f"proposing changes to {view.env.name} needs the editor role in a project whose "
            f"environment requires change requests; you have {view.role.label} here, or "
            f"{view.env.name} does not require change requests."
        )
    found = svc.flags.get(session.principal, project, flag)
    current = svc.flags.get_config(session.principal, project, view.env.key, flag)
    data = {**current.data, "enabled": True}
    return propose_page(request, svc, session, view, found, data, current.version)


def _apply_at(text: str, errors: FieldErrors) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, APPLY_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        errors.add("apply-at", "Write the time as 2031-05-01 09:30 (UTC), or leave it empty.")
        return None


def _config(text: str) -> JSON:
    """The configuration the rules editor put in the hidden field (refused if tampered into
    something that is not a JSON object; the engine then judges its content)."""
    try:
        value = strict_json.decode(text)
    except (strict_json.JsonInputError, ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInputError(
            "the proposed configuration is not a JSON object; open the rules again", []
        )
    return value


@router.post("/projects/{project}/flags/{flag}/propose")
def propose(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str, flag: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    found = svc.flags.get(session.principal, project, flag)
    data = _config(form.get("config"))
    try:
        version = int(form.text("version"))
    except ValueError:
        version = -1  # matches no version: refused as a conflict
    proposal = proposal_form.read(form)
    errors = FieldErrors()
    apply_at = _apply_at(form.text("apply-at"), errors)
    if not errors:
        operation = {
            "kind": "flag_config",
            "environment": view.env.key,
            "flag": flag,
            "config": data,
            "base_version": version,
        }
        try:
            created = svc.change_requests.propose(
                session.principal,
                project,
                title=proposal.title,
                proposal=proposal.sections,
                operations_in=[operation],
                apply_at=apply_at,
            )
        except InvalidInputError as exc:
            for problem in exc.problems:
                if problem.path == "/body/apply_at":
                    errors.add("apply-at", sentence(problem.message))
            others = [p for p in exc.problems if p.path != "/body/apply_at"]
            if others or not errors:
                proposal_form.add_problems(errors, exc.detail, others)
        except VersionConflictError:
            errors.add(
                None,
                f"Someone changed the rules of {flag} in {view.env.name} since you opened the "
                "editor. Open the rules again to see their change, then redo yours.",
            )
    if errors:
        values = proposal.values() | {"apply-at": form.text("apply-at")}
        return propose_page(
            request,
            svc,
            session,
            view,
            found,
            data,
            version,
            values=values,
            errors=errors,
            status=422,
        )
    request_id = created.request.id
    when = f", to be applied at {apply_at:%Y-%m-%d %H:%M} UTC once approved" if apply_at else ""
    return redirect(
        request,
        view.href(f"change-requests/{request_id}"),
        f"Proposed change request #{request_id} for {flag} in {view.env.name}{when}.",
    )
