"""The project's audit history with readable diffs, and one-click revert.

"Restore version N" on an entry that made version N+1 writes version N again as a new version
(:meth:`FlagService.revert_config`, :meth:`FlagService.revert`, :meth:`SegmentService.revert`):
history only grows, and the restore is itself an entry that can be undone the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import InvalidInputError
from fader_server.storage.ports import AuditEntry
from fader_server.web import frame
from fader_server.web.forms import CheckedForm
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import json_text, redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Svc, safe_next

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
    entries = [entry(audit, view) for audit in found]
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
