"""The project's audit history with readable diffs, and one-click revert.

"Restore version N" on an entry that made version N+1 writes version N again as a new version
(:meth:`FlagService.revert_config`, :meth:`FlagService.revert`, :meth:`SegmentService.revert`):
history only grows, and the restore is itself an entry that can be undone the same way.

A restore that changes what a protected environment serves asks first, like the kill switch:
restoring a configuration there, or a flag or segment definition whose earlier version would
change what it serves (:mod:`fader_server.services.protected_environments`). With JavaScript a
native dialog asks (and takes a reason); without it the server answers the first POST with a
confirmation page. An editor sees no "Restore" button for a restore only an admin may make.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import InvalidInputError
from fader_server.services.protected_environments import Impact
from fader_server.storage.ports import AuditEntry
from fader_server.web import frame
from fader_server.web.forms import CheckedForm
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import json_text, redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc, safe_next

router = page_router()

PAGE_SIZE = 50
Param = Annotated[str | None, Query(max_length=200)]
FILTERS = (
    ("", "Everything"),
    ("flag", "Flags and their configurations"),
    ("segment", "Segments"),
    ("environment", "Environments"),
    ("token", "Tokens"),
    ("member", "Members"),
    ("project", "The project itself"),
)
_TYPES = {"flag": ("flag", "config")}
_SEPARATOR = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "
REVERTIBLE = ("flag", "config", "segment")
NOUNS = {"config": "configuration", "flag": "flag", "segment": "segment"}


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a diff, as people read it."""

    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    audit: AuditEntry
    what: str
    changes: list[Change]
    created: str | None
    restore_to: int | None
    """The version a "Restore" button writes back, if the caller may and it exists."""
    confirm: str | None = None
    """Why the restore asks for a confirmation first (it changes a protected environment)."""


def _field(path: str) -> str:
    """A JSON pointer as people count: ``/rules/0/variant`` reads "rules, 1, variant" with
    angle quotes between the parts."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.strip("/").split("/") if p]
    readable = (str(int(p) + 1) if p.isdigit() else p for p in parts)
    return _SEPARATOR.join(readable) or "everything"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


def _changes(entry: AuditEntry) -> tuple[list[Change], str | None]:
    changes: list[Change] = []
    created = None
    for item in entry.diff:
        if item.get("path") == "/" and item.get("before") is None and "after" in item:
            created = json_text(item["after"])
            continue
        changes.append(
            Change(
                _field(str(item.get("path", "/"))),
                _text(item["before"]) if "before" in item else None,
                _text(item["after"]) if "after" in item else None,
            )
        )
    return changes, created


def _what(entry: AuditEntry, view: ProjectView) -> str:
    noun = NOUNS.get(entry.entity_type, entry.entity_type)
    if entry.entity_type == "config":
        env = next((e.name for e in view.environments if e.key == entry.environment), None)
        return f"{noun} of {entry.entity_key} in {env or entry.environment}"
    return f"{noun} {entry.entity_key}"


def _restore_to(entry: AuditEntry, view: ProjectView) -> int | None:
    if entry.entity_type not in REVERTIBLE or not entry.version or entry.version < 2:
        return None
    if entry.entity_type == "config":
        env = next((e for e in view.environments if e.key == entry.environment), None)
        if env is None or not view.can_change(env):
            return None
    elif not view.can_edit:
        return None
    return entry.version - 1


def entry(audit: AuditEntry, view: ProjectView) -> Entry:
    changes, created = _changes(audit)
    return Entry(audit, _what(audit, view), changes, created, _restore_to(audit, view))


def _live_in(view: ProjectView, environments: Sequence[str]) -> str:
    names = [view.environment(key).name for key in environments]
    return " and ".join(names)


def config_warning(view: ProjectView, environment: str, what: str, version: int) -> str:
    """The question before restoring a configuration in a protected environment."""
    name = view.environment(environment).name
    return (
        f"{name} is a protected environment. Restore version {version} of the {what}? "
        f"Every application connected to {name} picks the change up within seconds."
    )


def definition_warning(
    view: ProjectView, impacts: Sequence[Impact], what: str, version: int
) -> str:
    """The question before restoring a definition that changes protected environments."""
    where = _live_in(view, [i.environment for i in impacts])
    because = "; ".join(reason for i in impacts for reason in i.reasons)
    return (
        f"Restoring version {version} of the {what} changes what {where} serves "
        f"(protected): {because}. Every application connected to it picks the change up "
        "within seconds."
    )


def _guarded(svc: Svc, session: Session, view: ProjectView, items: list[Entry]) -> list[Entry]:
    """Mark restores that change a protected environment: admins confirm them, editors do not
    get the button (the service would refuse them)."""
    impacts: dict[tuple[str, str, int], list[Impact]] = {}
    for noun, service in (("flag", svc.flags), ("segment", svc.segments)):
        targets = {
            (e.audit.entity_key, e.restore_to)
            for e in items
            if e.audit.entity_type == noun and e.restore_to is not None
        }
        if targets:
            found = service.revert_impacts(session.principal, view.project.key, targets)
            impacts.update({(noun, k, v): i for (k, v), i in found.items()})
    guarded: list[Entry] = []
    for item in items:
        a, version = item.audit, item.restore_to
        if version is None:
            guarded.append(item)
        elif a.entity_type == "config" and a.environment:
            env = view.environment(a.environment)
            question = config_warning(view, env.key, item.what, version) if env.protected else None
            guarded.append(replace(item, confirm=question))
        elif (a.entity_type, a.entity_key, version) in impacts:
            changes = impacts[(a.entity_type, a.entity_key, version)]
            if view.is_admin:
                question = definition_warning(view, changes, item.what, version)
                guarded.append(replace(item, confirm=question))
            else:
                guarded.append(replace(item, restore_to=None))
        else:
            guarded.append(item)
    return guarded


@router.get("/projects/{project}/history")
def history(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    type: Param = None,
    key: Param = None,
    before: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    kind = type if type in dict(FILTERS) else ""
    key = (key or "").strip() or None
    before_id = int(before) if before and before.isdigit() else None
    found = svc.projects.audit(
        session.principal,
        project,
        limit=PAGE_SIZE,
        before_id=before_id,
        entity_types=_TYPES.get(kind, (kind,)) if kind else None,
        entity_key=key,
    )
    entries = _guarded(svc, session, view, [entry(audit, view) for audit in found])
    older = (
        view.href("history", type=kind, key=key, before=found[-1].id)
        if len(found) == PAGE_SIZE
        else None
    )
    return render(
        request,
        "history.html",
        {
            "session": session,
            "view": view,
            "section": "history",
            "title": f"History of {key}" if key else "History",
            "entries": entries,
            "filters": FILTERS,
            "kind": kind,
            "key": key or "",
            "older": older,
            "newest": view.href("history", type=kind, key=key) if before_id else None,
            "here": view.href("history", type=kind, key=key, before=before_id),
        },
    )


@router.post("/projects/{project}/history/revert")
def revert(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    entity, key, version_text = form.text("type"), form.text("key"), form.text("version")
    if entity not in REVERTIBLE or not version_text.isdigit() or not key:
        raise InvalidInputError("the restore form is incomplete; reload the history page")
    version = int(version_text)
    principal = session.principal
    comment = form.text("comment") or None
    back = safe_next(form.get("back"), view.href("history"))
    if form.get("confirmed") != "yes":
        question = _question(svc, session, view, entity, key, form.text("environment"), version)
        if question is not None:
            return _confirmation(request, session, view, form, question, back)
    if entity == "config":
        target = view.environment(form.text("environment"))
        done = svc.flags.revert_config(principal, project, target.key, key, version, None, comment)
        what = f"{key} in {target.name}"
        now = done.version
    elif entity == "flag":
        now = svc.flags.revert(principal, project, key, version, None, comment).version
        what = f"flag {key}"
    else:
        now = svc.segments.revert(principal, project, key, version, None, comment).version
        what = f"segment {key}"
    return redirect(
        request, back, f"Restored {what} to version {version}; it is now version {now}."
    )


def _question(
    svc: Svc,
    session: Session,
    view: ProjectView,
    entity: str,
    key: str,
    environment: str,
    version: int,
) -> str | None:
    """What to ask before this restore, or None when it needs no confirmation."""
    if entity == "config":
        env = view.environment(environment)
        what = f"configuration of {key} in {env.name}"
        return config_warning(view, env.key, what, version) if env.protected else None
    service = svc.flags if entity == "flag" else svc.segments
    impacts = service.revert_impacts(session.principal, view.project.key, [(key, version)])
    found = impacts.get((key, version))
    return None if not found else definition_warning(view, found, f"{entity} {key}", version)


def _confirmation(
    request: Request,
    session: Session,
    view: ProjectView,
    form: CheckedForm,
    question: str,
    back: str,
) -> Response:
    """The confirmation page (without JavaScript): the same form again, confirmed, with a
    field for the reason that the history will show."""
    version = form.text("version")
    return render(
        request,
        "confirm.html",
        {
            "session": session,
            "view": view,
            "section": "history",
            "title": f"Restore version {version}?",
            "explanation": question,
            "action": request.url.path,
            "fields": {
                "env": view.env.key,
                "type": form.text("type"),
                "key": form.text("key"),
                "environment": form.text("environment"),
                "version": version,
                "back": back,
            },
            "confirm_label": f"Restore version {version}",
            "danger": True,
            "cancel": back,
            "with_comment": True,
        },
    )
