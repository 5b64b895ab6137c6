"""Incidents in the console: the list (filtered by state), opening one by hand, an incident's
page (state, evidence, timeline, acknowledge / resolve / reopen, the post-mortem and its action
items) and the project's action items (open, overdue, done).

Every action is one call to :class:`IncidentService`, which checks the role again (editor), so
a viewer who posts a form gets its 403. A form the service refuses (a missing resolution, a
fourth action item, an owner who is not a member, a summary someone else saved first) comes
back with the message next to its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from fader_server.errors import InvalidInputError, InvalidStateError, VersionConflictError
from fader_server.services.incidents import records
from fader_server.services.incidents.records import IncidentView
from fader_server.web import frame, incident_view
from fader_server.web.forms import CheckedForm, FieldErrors, from_problems
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

PAGE_SIZE = 50
ITEMS_PAGE = 200
DEFAULT_DUE_DAYS = 7
Param = Annotated[str | None, Query(max_length=200)]
IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_NEW_FIELDS = {
    "/title": "incident-title",
    "/severity": "incident-severity",
    "/description": "incident-description",
    "/flag": "incident-flag",
    "/environment": "incident-environment",
}
_ITEM_FIELDS = {"/title": "item-title", "/owner": "item-owner", "/due_on": "item-due"}


@dataclass
class DetailForms:
    """What the incident page's forms hold after a refused submission."""

    values: dict[str, str] = field(default_factory=dict)
    errors: FieldErrors = field(default_factory=FieldErrors)


def _state_filter(state: str | None) -> str | None:
    return state if state in records.STATES else None


@router.get("/projects/{project}/incidents")
def incident_list(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    state: Param = None,
    before: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    chosen = _state_filter(state)
    before_id = int(before) if before and before.isascii() and before.isdigit() else None
    found = svc.incidents.list_incidents(
        session.principal, project, limit=PAGE_SIZE, before_id=before_id, state=chosen
    )
    return render(
        request,
        "incidents/list.html",
        {
            "session": session,
            "view": view,
            "section": "incidents",
            "title": f"{incident_view.STATE_LABELS[chosen]} incidents" if chosen else "Incidents",
            "incidents": found,
            "state": chosen,
            "states": [("", "Any state"), *incident_view.STATE_LABELS.items()],
            "iv": incident_view,
            "older": view.href("incidents", state=chosen, before=found[-1].id)
            if len(found) == PAGE_SIZE
            else None,
            "newest": view.href("incidents", state=chosen) if before_id else None,
        },
    )


def _new_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    values: dict[str, str],
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    flags = svc.flags.search(
        session.principal, view.project.key, limit=500, after_key=None, query=None
    )
    return render(
        request,
        "incidents/new.html",
        {
            "session": session,
            "view": view,
            "section": "incidents",
            "title": "Open an incident",
            "values": values,
            "errors": errors,
            "severities": list(incident_view.SEVERITY_LABELS.items()),
            "flags": [("", "No particular flag"), *((f.key, f.key) for f in flags)],
            "environments": [("", "Not known"), *((e.key, e.name) for e in view.environments)],
        },
        status=status,
    )


@router.get("/projects/{project}/incidents/_new")
def new_incident(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    values = {"severity": "major", "environment": view.env.key}
    return _new_page(request, svc, session, view, values)


@router.post("/projects/{project}/incidents/_new")
def create_incident(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    values = {
        name: form.text(name)
        for name in ("title", "severity", "description", "flag", "environment")
    }
    errors = FieldErrors()
    if not values["title"]:
        errors.add("incident-title", "Say in a line what is wrong.")
    if not errors:
        try:
            opened = svc.incidents.open(
                session.principal,
                project,
                title=values["title"],
                severity=values["severity"],
                description=values["description"],
                flag=values["flag"] or None,
                environment=values["environment"] or None,
            )
        except InvalidInputError as exc:
            from_problems(exc.problems, "", _NEW_FIELDS, errors)
            if not exc.problems:
                errors.add(None, exc.detail)
        else:
            incident = opened.incident
            return redirect(
                request,
                view.href(f"incidents/{incident.id}"),
                f"Opened incident {incident.id}: {incident.title}.",
            )
    return _new_page(request, svc, session, view, values, errors, status=422)


def _detail(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    incident: IncidentView,
    forms: DetailForms | None = None,
    status: int = 200,
) -> Response:
    forms = forms or DetailForms()
    members = svc.projects.members(session.principal, view.project.key)
    usernames = sorted(user.username for user, _ in members)
    if session.username not in usernames and session.principal.instance_admin:
        usernames.insert(0, session.username)
    today = records.today(svc.incidents.clock())
    found = incident.incident
    values = {
        "summary": found.summary,
        "version": str(found.version),
        "item-owner": session.username if session.username in usernames else "",
        "item-due": (today + timedelta(days=DEFAULT_DUE_DAYS)).isoformat(),
        **forms.values,
    }
    return render(
        request,
        "incidents/detail.html",
        {
            "session": session,
            "view": view,
            "section": "incidents",
            "title": f"Incident {found.id}: {found.title}",
            "incident": found,
            "detail": incident,
            "lines": incident_view.timeline(incident),
            "iv": incident_view,
            "owners": [(u, u) for u in usernames],
            "values": values,
            "errors": forms.errors or None,
            "today": today.isoformat(),
            "max_items": records.MAX_ACTION_ITEMS,
        },
        status=status,
    )


@router.get("/projects/{project}/incidents/{incident_id}")
def incident_page(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    incident_id: IncidentId,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    found = svc.incidents.get(session.principal, project, incident_id)
    return _detail(request, svc, session, view, found)


def _refused(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    incident_id: int,
    forms: DetailForms,
) -> Response:
    found = svc.incidents.get(session.principal, view.project.key, incident_id)
    return _detail(request, svc, session, view, found, forms, status=422)


@router.post("/projects/{project}/incidents/{incident_id}/resolve")
def resolve(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    incident_id: IncidentId,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    forms = DetailForms(values={"resolution": form.text("resolution")})
    if not forms.values["resolution"]:
        forms.errors.add("resolution", "Say what ended the incident.")
        return _refused(request, svc, session, view, incident_id, forms)
    try:
        svc.incidents.resolve(
            session.principal, project, incident_id, resolution=forms.values["resolution"]
        )
    except InvalidInputError as exc:
        from_problems(exc.problems, "", {"/resolution": "resolution"}, forms.errors)
        return _refused(request, svc, session, view, incident_id, forms)
    return redirect(
        request, view.href(f"incidents/{incident_id}"), f"Resolved incident {incident_id}."
    )


@router.post("/projects/{project}/incidents/{incident_id}/postmortem")
def postmortem(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    incident_id: IncidentId,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    summary, version = form.get("summary").strip(), form.text("version")
    forms = DetailForms(values={"summary": summary})
    try:
        svc.incidents.update_postmortem(
            session.principal,
            project,
            incident_id,
            summary=summary,
            expected=int(version) if version.isascii() and version.isdigit() else None,
        )
    except InvalidInputError as exc:
        from_problems(exc.problems, "", {"/summary": "summary"}, forms.errors)
        return _refused(request, svc, session, view, incident_id, forms)
    except VersionConflictError:
        forms.errors.add(
            "summary",
            "Someone saved the post-mortem while you were writing. Your text is kept below; "
            "compare it with theirs in the timeline and save again.",
        )
        return _refused(request, svc, session, view, incident_id, forms)
    return redirect(
        request,
        view.href(f"incidents/{incident_id}") + "#postmortem-title",
        "Saved the post-mortem.",
    )


@router.post("/projects/{project}/incidents/{incident_id}/action-items")
def add_item(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    incident_id: IncidentId,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    forms = DetailForms(
        values={name: form.text(name) for name in ("item-title", "item-owner", "item-due")}
    )
    values = forms.values
    if not values["item-title"]:
        forms.errors.add("item-title", "Say in a line what will be fixed.")
    if not values["item-owner"]:
        forms.errors.add("item-owner", "Choose who owns it.")
    try:
        due = date.fromisoformat(values["item-due"])
    except ValueError:
        forms.errors.add("item-due", "Give the due day as YYYY-MM-DD.")
    if forms.errors:
        return _refused(request, svc, session, view, incident_id, forms)
    try:
        item = svc.incidents.add_item(
            session.principal, project, incident_id, title=values["item-title"],
            owner=values["item-owner"], due_on=due,
        )  # fmt: skip
    except InvalidInputError as exc:
        from_problems(exc.problems, "", _ITEM_FIELDS, forms.errors)
        return _refused(request, svc, session, view, incident_id, forms)
    return redirect(
        request,
        view.href(f"incidents/{incident_id}") + "#items-title",
        f"Added action item “{item.title}” for {item.owner}, due {item.due_on.isoformat()}.",
    )


@router.post("/projects/{project}/incidents/{incident_id}/action-items/{item_id}/done")
def complete_item(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    incident_id: IncidentId,
    item_id: ItemId,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    back = form.text("back")
    own = back.startswith(f"/projects/{view.project.key}/")  # never a page elsewhere
    target = back if own else view.href(f"incidents/{incident_id}") + "#items-title"
    try:
        item = svc.incidents.complete_item(session.principal, project, incident_id, item_id)
    except InvalidStateError as exc:  # done already, by someone else: say so where we were
        return redirect(request, target, exc.detail + ".")
    return redirect(request, target, f"Marked “{item.title}” done.")


@router.get("/projects/{project}/action-items")
def action_items(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    status: Param = None,
) -> Response:
    """Open items by default (overdue ones first in their own table), or overdue or done ones."""
    view = frame.load(svc, session, project, env)
    chosen = status if status in records.ITEM_FILTERS else records.ITEM_OPEN
    found = svc.incidents.action_items(session.principal, project, status=chosen, limit=ITEMS_PAGE)
    now = svc.incidents.clock()
    return render(
        request,
        "incidents/items.html",
        {
            "session": session,
            "view": view,
            "section": "incidents",
            "title": f"{incident_view.ITEM_LABELS[chosen]} action items",
            "status": chosen,
            "statuses": list(incident_view.ITEM_LABELS.items()),
            "action_items": [(item, records.item_state(item, now)) for item in found],
            "iv": incident_view,
            "back": view.href("action-items", status=chosen),
            "full": len(found) == ITEMS_PAGE,
        },
    )


# Last: its `{step}` would otherwise take the paths of the routes above.
@router.post("/projects/{project}/incidents/{incident_id}/{step}")
def lifecycle_step(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    incident_id: IncidentId,
    step: Annotated[str, Path(pattern="^(acknowledge|reopen)$")],
) -> Response:
    """Acknowledge or reopen: one button each, nothing to fill in."""
    view = frame.load(svc, session, project, form.text("env") or None)
    run = svc.incidents.acknowledge if step == "acknowledge" else svc.incidents.reopen
    done = run(session.principal, project, incident_id)
    now = incident_view.state_label(done.incident).lower()
    verb = "Acknowledged" if step == "acknowledge" else "Reopened"
    return redirect(
        request,
        view.href(f"incidents/{incident_id}"),
        f"{verb} incident {incident_id}; it is {now}.",
    )
