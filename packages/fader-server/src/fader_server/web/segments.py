"""Segments: the list, creating and editing one (included and excluded keys, rules of
clauses), checked by the engine as you type like the flag rules editor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import JSONResponse, Response

from fader_server.errors import AlreadyExistsError, InvalidInputError, VersionConflictError
from fader_server.services import documents
from fader_server.storage.ports import JSON
from fader_server.web import frame
from fader_server.web.clauses import OPERATORS, ClauseRow, read_rows, rows_from_clauses
from fader_server.web.forms import (
    CheckedForm,
    FieldErrors,
    Form,
    from_problems,
    indices,
    lines,
    pointer,
    renumbered,
)
from fader_server.web.frame import ProjectView
from fader_server.web.projects import KEY_HINT, key_problem
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]


@dataclass
class SegmentForm:
    key: str = ""
    name: str = ""
    description: str = ""
    included: str = ""
    excluded: str = ""
    rules: list[list[ClauseRow]] = field(default_factory=list)
    version: int = 0
    comment: str = ""


def from_segment(key: str, data: JSON, version: int) -> SegmentForm:
    return SegmentForm(
        key=key,
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
        included="\n".join(data.get("included") or []),
        excluded="\n".join(data.get("excluded") or []),
        rules=[rows_from_clauses(r.get("clauses") or []) for r in data.get("rules") or []],
        version=version,
    )


def read(form: Form, *, with_key: bool) -> tuple[SegmentForm, JSON, dict[str, str]]:
    fields = {
        "/name": "name",
        "/description": "description",
        "/included": "included",
        "/excluded": "excluded",
        "/rules": "rules",
    }
    version = form.text("version")
    segment = SegmentForm(
        key=form.text("key") if with_key else "",
        name=form.text("name"),
        description=form.get("description").strip(),
        included=form.get("included").strip(),
        excluded=form.get("excluded").strip(),
        version=int(version) if version.isdigit() else 0,
        comment=form.text("comment"),
    )
    rules_json = []
    form = renumbered(form, "rules", r"rules-(\d+)-rule")
    for i in range(len(indices(form, r"rules-(\d+)-rule"))):
        at = pointer("rules", i)
        fields[at] = f"rules-{i}"
        rows = read_rows(form, f"rules-{i}", at, fields)
        segment.rules.append(rows.rows)
        rules_json.append({"clauses": rows.clauses})
    data: JSON = {
        "included": lines(segment.included),
        "excluded": lines(segment.excluded),
        "rules": rules_json,
    }
    if segment.name:
        data["name"] = segment.name
    if segment.description:
        data["description"] = segment.description
    return segment, data, fields


def apply(segment: SegmentForm, action: str, first_segment: str) -> str:
    name, _, rest = action.partition(":")
    args = [int(a) for a in rest.split(":") if a.isdigit()]
    if name == "add-rule":
        segment.rules.append([ClauseRow()])
        return f"rules-{len(segment.rules) - 1}-clauses-0-attribute"
    if not args or args[0] >= len(segment.rules):
        return ""
    i = args[0]
    if name in ("add-clause", "add-segment-clause"):
        segment_clause = name == "add-segment-clause"
        segment.rules[i].append(
            ClauseRow(op="in_segment", values=first_segment) if segment_clause else ClauseRow()
        )
        part = "values" if segment_clause else "attribute"
        return f"rules-{i}-clauses-{len(segment.rules[i]) - 1}-{part}"
    if name == "remove-clause" and len(args) == 2 and args[1] < len(segment.rules[i]):
        del segment.rules[i][args[1]]
        return f"rules-{i}-add-clause"
    if name == "remove-rule":
        del segment.rules[i]
        return "add-rule"
    return ""


def _form_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    segment: SegmentForm,
    *,
    creating: bool,
    errors: FieldErrors | None = None,
    focus: str = "",
    checked: bool = False,
    status: int = 200,
) -> Response:
    others = svc.segments.search(
        session.principal, view.project.key, limit=documents.MAX_ENTITIES, after_key=None
    )
    base = "segments/_new" if creating else f"segments/{segment.key}"
    return render(
        request,
        "segments/form.html",
        {
            "session": session,
            "view": view,
            "section": "segments",
            "title": "New segment" if creating else f"Segment {segment.key}",
            "form": segment,
            "creating": creating,
            "errors": errors,
            "focus": focus,
            "checked": checked,
            "operators": OPERATORS,
            "segments": [s.key for s in others if s.key != segment.key],
            "key_hint": KEY_HINT,
            "action": view.href(base),
            "check_url": None if creating else view.href(f"segments/{segment.key}/check"),
        },
        status=status,
    )


@router.get("/projects/{project}/segments")
def segment_list(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    found = svc.segments.search(
        session.principal, project, limit=documents.MAX_ENTITIES, after_key=None
    )
    return render(
        request,
        "segments/list.html",
        {
            "session": session,
            "view": view,
            "section": "segments",
            "title": "Segments",
            "segments": found,
        },
    )


@router.get("/projects/{project}/segments/_new")
def new_segment(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    return _form_page(
        request, svc, session, view, SegmentForm(rules=[[ClauseRow()]]), creating=True
    )


@router.get("/projects/{project}/segments/{segment}")
def segment_page(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    segment: str,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    found = svc.segments.get(session.principal, project, segment)
    form = from_segment(segment, found.data, found.version)
    return _form_page(request, svc, session, view, form, creating=False)


@router.post("/projects/{project}/segments/_new")
def create_segment(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    return _save(request, svc, session, form, project, None)


@router.post("/projects/{project}/segments/{segment}")
def update_segment(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    segment: str,
) -> Response:
    return _save(request, svc, session, form, project, segment)


def _save(
    request: Request,
    svc: Svc,
    session: Session,
    form: Form,
    project: str,
    key: str | None,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    creating = key is None
    segment, data, fields = read(form, with_key=creating)
    if key is not None:
        segment.key = key
    action = form.get("action") or "save"
    if action not in ("save", "check"):
        others = svc.segments.search(session.principal, project, limit=2, after_key=None)
        first = next((s.key for s in others if s.key != segment.key), "")
        focus = apply(segment, action, first)
        return _form_page(request, svc, session, view, segment, creating=creating, focus=focus)
    errors = FieldErrors()
    if creating and (problem := key_problem(segment.key, "segment")):
        errors.add("key", problem)
    if not errors:
        principal = session.principal
        comment = segment.comment or None
        try:
            if action == "check":
                svc.segments.check(principal, project, segment.key, data)
            elif creating:
                saved = svc.segments.create(principal, project, segment.key, data, comment)
            else:
                saved = svc.segments.update(
                    principal, project, segment.key, data, segment.version, comment
                )
        except InvalidInputError as exc:
            from_problems(exc.problems, pointer("segments", segment.key), fields, errors)
        except AlreadyExistsError:
            errors.add("key", f"A segment with the key “{segment.key}” already exists.")
        except VersionConflictError:
            errors.add(
                None,
                f"Someone changed segment {segment.key} since you opened it. Open it again to "
                "see their change, then redo yours.",
            )
        else:
            if action == "save":
                done = "Created" if creating else "Saved"
                return redirect(
                    request,
                    view.href("segments"),
                    f"{done} segment {segment.key} (version {saved.version}).",
                )
    return _form_page(
        request,
        svc,
        session,
        view,
        segment,
        creating=creating,
        errors=errors,
        checked=action == "check",
        status=422 if errors else 200,
    )


@router.post("/projects/{project}/segments/{segment}/check")
def check_segment(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    segment: str,
) -> Response:
    _, data, fields = read(form, with_key=False)
    errors = FieldErrors()
    try:
        svc.segments.check(session.principal, project, segment, data)
    except InvalidInputError as exc:
        from_problems(exc.problems, pointer("segments", segment), fields, errors)
    return JSONResponse({"problems": errors.as_json()})
