"""The flags list (full-text search, tag filters, the kill switch on every row), creating and
editing flag definitions.

The kill switch is one form per row: "Turn off new-checkout in production". In a protected
environment it needs a confirmation: without JavaScript the server answers the first POST
with a confirmation page; with JavaScript a native ``<dialog>`` asks first and the form is
posted already confirmed. Either way the change is one :meth:`FlagService.toggle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import AlreadyExistsError, InvalidInputError, VersionConflictError
from fader_server.storage.ports import JSON
from fader_server.web import definition_form, frame
from fader_server.web.forms import CheckedForm, FieldErrors, from_problems, pointer
from fader_server.web.frame import ProjectView
from fader_server.web.projects import KEY_HINT, key_problem
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc, safe_next

router = page_router()

PAGE_SIZE = 50
_SCAN = 200
Param = Annotated[str | None, Query(max_length=200)]
Tags = Annotated[list[str] | None, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class FlagRow:
    key: str
    name: str
    description: str
    kind: str
    tags: list[str]
    owner_team: str | None
    enabled: bool


def _rows(
    svc: Svc,
    session: Session,
    project: str,
    query: str | None,
    tags: list[str],
    after: str | None,
    states: dict[str, bool],
) -> tuple[list[FlagRow], str | None]:
    """One page of flags matching the search and carrying every selected tag, with their state
    in the current environment (from its document: one read for the whole page)."""
    rows: list[FlagRow] = []
    cursor = after
    more = True
    while more and len(rows) <= PAGE_SIZE:
        found = svc.flags.search(
            session.principal, project, limit=_SCAN, after_key=cursor, query=query
        )
        more = len(found) == _SCAN
        for flag in found:
            cursor = flag.key
            data = flag.data
            if all(t in (data.get("tags") or []) for t in tags):
                rows.append(
                    FlagRow(
                        flag.key,
                        str(data.get("name") or flag.key),
                        str(data.get("description") or ""),
                        str(data.get("kind") or "release"),
                        list(data.get("tags") or []),
                        data.get("owner_team"),
                        states.get(flag.key, False),
                    )
                )
            if len(rows) > PAGE_SIZE:
                break
    next_after = rows[PAGE_SIZE - 1].key if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], next_after


@router.get("/projects/{project}/flags")
def flag_list(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    q: Param = None,
    tag: Tags = None,
    after: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    tags = [t for t in (tag or []) if t]
    query = (q or "").strip() or None
    document: JSON = (
        svc.projects.document(session.principal, project, view.env.key)
        if view.env.key
        else {"flags": {}}
    )
    states = {k: bool(f.get("enabled", True)) for k, f in document["flags"].items()}
    rows, next_after = _rows(svc, session, project, query, tags, after, states)
    all_tags = sorted({t for f in document["flags"].values() for t in f.get("tags") or []})
    here = view.href("flags", q=query, tag=tags, after=after)
    return render(
        request,
        "flags/list.html",
        {
            "session": session,
            "view": view,
            "section": "flags",
            "title": "Flags",
            "rows": rows,
            "query": query or "",
            "tags": tags,
            "all_tags": all_tags,
            "next_page": view.href("flags", q=query, tag=tags, after=next_after)
            if next_after
            else None,
            "first_page": view.href("flags", q=query, tag=tags) if after else None,
            "here": here,
            "total": len(document["flags"]),
        },
    )


def toggle_label(enabled: bool, flag: str, env: frame.Environment) -> str:
    return f"Turn {'on' if enabled else 'off'} {flag} in {env.name}"


@router.post("/projects/{project}/flags/{flag}/toggle")
def toggle(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    flag: str,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    enabled = form.get("enabled") == "on"
    back = safe_next(form.get("back"), view.href("flags"))
    comment = form.text("comment") or None
    if view.env.protected and form.get("confirmed") != "yes":
        config = svc.flags.get_config(session.principal, project, view.env.key, flag)
        served = config.data.get("offVariant") if not enabled else None
        return render(
            request,
            "confirm.html",
            {
                "session": session,
                "view": view,
                "section": "flags",
                "title": toggle_label(enabled, flag, view.env) + "?",
                "explanation": (
                    f"{view.env.name} is a protected environment. "
                    + (
                        f"Every application connected to it will serve the off variant "
                        f"“{served}” of {flag} to everyone within seconds."
                        if not enabled
                        else f"Every application connected to it will evaluate {flag} by its "
                        "rules again within seconds."
                    )
                ),
                "action": request.url.path,
                "fields": {
                    "env": view.env.key,
                    "enabled": "on" if enabled else "off",
                    "back": back,
                },
                "confirm_label": toggle_label(enabled, flag, view.env),
                "danger": not enabled,
                "cancel": back,
                "with_comment": True,
            },
        )
    config = svc.flags.toggle(
        session.principal, project, view.env.key, flag, enabled, None, comment
    )
    state = "on" if config.data.get("enabled") else "off"
    return redirect(
        request,
        back,
        f"{flag} is now {state} in {view.env.name} (configuration version {config.version}).",
    )


# ------------------------------------------------------------------ definitions
def _definition_page(
    request: Request,
    session: Session,
    view: ProjectView,
    definition: definition_form.DefinitionForm,
    *,
    creating: bool,
    errors: FieldErrors | None = None,
    focus: str = "",
    status: int = 200,
) -> Response:
    title = "New flag" if creating else f"Edit {definition.key}"
    return render(
        request,
        "flags/form.html",
        {
            "session": session,
            "view": view,
            "section": "flags",
            "title": title,
            "form": definition,
            "creating": creating,
            "errors": errors,
            "focus": focus,
            "kinds": definition_form.KINDS,
            "types": definition_form.TYPES,
            "key_hint": KEY_HINT,
            "action": view.href("flags/_new")
            if creating
            else view.href(f"flags/{definition.key}/edit"),
        },
        status=status,
    )


@router.get("/projects/{project}/flags/_new")
def new_flag(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    return _definition_page(request, session, view, definition_form.DefinitionForm(), creating=True)


@router.get("/projects/{project}/flags/{flag}/edit")
def edit_flag(
    request: Request, svc: Svc, session: CurrentSession, project: str, flag: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    found = svc.flags.get(session.principal, project, flag)
    definition = definition_form.from_definition(flag, found.data, found.version)
    return _definition_page(request, session, view, definition, creating=False)


@router.post("/projects/{project}/flags/_new")
def create_flag(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    return _save_definition(request, svc, session, form, project, None)


@router.post("/projects/{project}/flags/{flag}/edit")
def update_flag(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str, flag: str
) -> Response:
    return _save_definition(request, svc, session, form, project, flag)


def _save_definition(
    request: Request,
    svc: Svc,
    session: Session,
    form: CheckedForm,
    project: str,
    flag: str | None,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    creating = flag is None
    definition, data, fields, errors = definition_form.read(form, with_key=creating)
    if flag is not None:
        definition.key = flag
    action = form.get("action") or "save"
    if action != "save":
        focus = definition_form.apply(definition, action)
        return _definition_page(request, session, view, definition, creating=creating, focus=focus)
    key = definition.key
    if creating and (problem := key_problem(key, "flag")):
        errors.add("key", problem)
    if not errors:
        try:
            if creating:
                saved = svc.flags.create(
                    session.principal, project, key, data, definition.comment or None
                )
            else:
                saved = svc.flags.update(
                    session.principal,
                    project,
                    key,
                    data,
                    definition.version,
                    definition.comment or None,
                )
        except InvalidInputError as exc:
            from_problems(exc.problems, pointer("flags", key), fields, errors)
        except AlreadyExistsError:
            errors.add("key", f"A flag with the key “{key}” already exists; choose another key.")
        except VersionConflictError as exc:
            errors.add(None, exc.detail)
        else:
            done = "Created" if creating else "Saved"
            note = " It is off in every environment until you turn it on." if creating else ""
            return redirect(
                request,
                view.href(f"flags/{key}"),
                f"{done} flag {key} (version {saved.version}).{note}",
            )
    return _definition_page(
        request, session, view, definition, creating=creating, errors=errors, status=422
    )
