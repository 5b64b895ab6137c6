"""A project's webhooks: list, subscribe (event types as checkboxes; the signing secret is
shown once, on the page that answers the creation), edit (URL, description, event types,
enabled), delete, and each webhook's delivery log with a redeliver button. Project admins
only, like the API (docs/notifications.md).

Statuses are words in the table (delivered, pending, failed), never a colour alone, and every
attempt shows its HTTP status or the class of error that stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from fader_server.errors import AlreadyExistsError, InvalidInputError
from fader_server.services.webhooks import WebhookChange
from fader_server.storage.ports import Webhook
from fader_server.storage.ports.outbox import EVENT_TYPES
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors, Form
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
LOG_PAGE = 50
EVENTS = (
    ("flag", "Flag changes", "flags, their configurations, segments and environments"),
    ("change_request", "Change requests", "proposed, reviewed, approved, applied"),
    ("schedule", "Schedules", "changes scheduled, cancelled, applied at their time"),
    ("incident", "Incidents", "opened, acknowledged, resolved; overdue action items"),
    ("rollout", "Rollouts", "release plans started, advanced, rolled back"),
)
EVENT_LABELS = {key: label for key, label, _ in EVENTS}
assert tuple(key for key, _, _ in EVENTS) == EVENT_TYPES


def _list_page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    *,
    created: Webhook | None = None,
    errors: FieldErrors | None = None,
    values: dict[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    hooks = svc.webhooks.list_webhooks(session.principal, view.project.key)
    return render(
        request,
        "webhooks/list.html",
        {
            "session": session,
            "view": view,
            "section": "webhooks",
            "title": "Webhooks",
            "webhooks": hooks,
            "events": EVENTS,
            "event_labels": EVENT_LABELS,
            "created": created,
            "errors": errors,
            "values": values or {"url": "", "description": "", "events": ["flag"]},
        },
        status=status_code,
    )


@router.get("/projects/{project}/webhooks")
def webhooks(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    return _list_page(request, svc, session, view)


@dataclass(frozen=True, slots=True)
class Fields:
    """What the create and edit forms send."""

    url: str
    description: str
    events: list[str]

    @property
    def values(self) -> dict[str, object]:
        return {"url": self.url, "description": self.description, "events": self.events}


def _checked(form: Form) -> tuple[Fields, FieldErrors]:
    """The fields of the create and edit forms, and what is wrong with them before the service
    is asked (which checks the URL's reachability rules again)."""
    url, description = form.text("url"), form.text("description")
    events = [v for k, v in form.items if k == "events"]
    errors = FieldErrors()
    if not url:
        errors.add("webhook-url", "Enter the URL to post notifications to, e.g. a Slack webhook.")
    elif len(url) > 2000:
        errors.add("webhook-url", "The URL is longer than 2000 characters.")
    if len(description) > 200:
        errors.add("webhook-description", "The description is longer than 200 characters.")
    if not events or any(e not in EVENT_LABELS for e in events):
        errors.add("webhook-event-flag", "Choose at least one kind of event to hear about.")
    return Fields(url, description, events), errors


def _url_refused(errors: FieldErrors, exc: InvalidInputError | AlreadyExistsError) -> None:
    """The service's refusal of a URL, next to the URL field."""
    if isinstance(exc, InvalidInputError) and exc.problems:
        errors.add("webhook-url", f"{exc.detail}: {exc.problems[0].message}")
    else:
        errors.add("webhook-url", exc.detail)


@router.post("/projects/{project}/webhooks")
def create_webhook(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    fields, errors = _checked(form)
    if not errors:
        try:
            hook = svc.webhooks.create(
                session.principal, project, fields.url, fields.description, events=fields.events
            )
        except (InvalidInputError, AlreadyExistsError) as exc:
            _url_refused(errors, exc)
        else:
            return _list_page(request, svc, session, view, created=hook, status_code=201)
    values = fields.values
    return _list_page(request, svc, session, view, errors=errors, values=values, status_code=422)


def _edit_page(
    request: Request,
    session: Session,
    view: ProjectView,
    hook: Webhook,
    *,
    errors: FieldErrors | None = None,
    values: dict[str, object] | None = None,
) -> Response:
    if values is None:
        values = {"url": hook.url, "description": hook.description, "events": list(hook.events)}
        values["enabled"] = hook.enabled
    return render(
        request,
        "webhooks/edit.html",
        {
            "session": session,
            "view": view,
            "section": "webhooks",
            "title": f"Edit webhook {hook.id}",
            "webhook": hook,
            "events": EVENTS,
            "errors": errors,
            "values": values,
        },
        status=422 if errors else 200,
    )


@router.get("/projects/{project}/webhooks/{webhook_id}/edit")
def edit_webhook(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    webhook_id: Id,
    env: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    hook = svc.webhooks.get(session.principal, project, webhook_id)
    return _edit_page(request, session, view, hook)


@router.post("/projects/{project}/webhooks/{webhook_id}/edit")
def save_webhook(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    webhook_id: Id,
) -> Response:
    """Write every field of the form at once. Webhooks carry no version (the service writes
    the last edit), so there is no conflict to report; the secret stays as it is."""
    view = frame.load(svc, session, project, form.text("env") or None)
    hook = svc.webhooks.get(session.principal, project, webhook_id)
    fields, errors = _checked(form)
    enabled = form.checked("enabled")
    if not errors:
        change = WebhookChange(fields.url, fields.description, enabled, fields.events)
        try:
            svc.webhooks.update(session.principal, project, webhook_id, change)
        except (InvalidInputError, AlreadyExistsError) as exc:
            _url_refused(errors, exc)
        else:
            return redirect(request, view.href("webhooks"), f"Saved webhook {webhook_id}.")
    values = {**fields.values, "enabled": enabled}
    return _edit_page(request, session, view, hook, errors=errors, values=values)


@router.post("/projects/{project}/webhooks/{webhook_id}/enabled")
def set_enabled(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    webhook_id: Id,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    enabled = form.get("enabled") == "yes"
    svc.webhooks.update(session.principal, project, webhook_id, WebhookChange(enabled=enabled))
    state = "enabled: pending deliveries go out now" if enabled else "disabled: deliveries wait"
    return redirect(request, view.href("webhooks"), f"Webhook {webhook_id} {state}.")


@router.post("/projects/{project}/webhooks/{webhook_id}/delete")
def delete_webhook(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    webhook_id: Id,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    if form.get("confirmed") != "yes":
        return render(
            request,
            "confirm.html",
            {
                "session": session,
                "view": view,
                "section": "webhooks",
                "title": f"Delete webhook {webhook_id}?",
                "explanation": "It hears nothing more; its pending deliveries and its delivery "
                "log are deleted with it.",
                "action": request.url.path,
                "fields": {"env": view.env.key},
                "confirm_label": f"Delete webhook {webhook_id}",
                "danger": True,
                "cancel": view.href("webhooks"),
                "with_comment": False,
            },
        )
    svc.webhooks.delete(session.principal, project, webhook_id)
    return redirect(request, view.href("webhooks"), f"Deleted webhook {webhook_id}.")


@router.get("/projects/{project}/webhooks/{webhook_id}")
def delivery_log(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    webhook_id: Id,
    env: Param = None,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    hook = svc.webhooks.get(session.principal, project, webhook_id)
    deliveries = svc.webhooks.deliveries(
        session.principal, project, webhook_id, limit=LOG_PAGE, before_id=before
    )
    return render(
        request,
        "webhooks/log.html",
        {
            "session": session,
            "view": view,
            "section": "webhooks",
            "title": f"Deliveries of webhook {webhook_id}",
            "webhook": hook,
            "event_labels": EVENT_LABELS,
            "deliveries": deliveries,
            "older": deliveries[-1].id if len(deliveries) == LOG_PAGE else None,
        },
    )


@router.post("/projects/{project}/webhooks/{webhook_id}/deliveries/{delivery}/redeliver")
def redeliver(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    webhook_id: Id,
    delivery: Id,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    queued = svc.webhooks.redeliver(session.principal, project, webhook_id, delivery)
    return redirect(
        request,
        view.href(f"webhooks/{webhook_id}"),
        f"Delivery {queued.id} is queued again; it goes out within seconds.",
    )
