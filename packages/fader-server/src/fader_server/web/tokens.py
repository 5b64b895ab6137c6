"""A project's API tokens and SDK keys: list (with when each was last used), create (the secret
is shown once, on the page that answers the creation, and never again), revoke. Project admins
only, like the API.

An admin token made here acts with project-admin power independently of the person who made it,
so it must expire (a year at most, as the service enforces for tokens users create); SDK and
client keys may live as long as the application they are built into.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import NotFoundError
from fader_server.services.identity import IssuedToken
from fader_server.storage.ports import Token, TokenKind
from fader_server.web import frame
from fader_server.web.forms import CheckedForm, FieldErrors
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
KINDS = (
    ("server", "Server-side SDK key", "for a backend service's SDK in one environment"),
    ("client", "Client-side key", "for a browser or mobile app in one environment"),
    ("admin", "Admin token", "for scripts and CI; full control of this project"),
)
KIND_LABELS = {k: label for k, label, _ in KINDS}
EXPIRIES = (("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never"))


def status(token: Token, now: datetime) -> str:
    if token.revoked_at is not None:
        return f"Revoked {token.revoked_at:%Y-%m-%d}"
    if token.expires_at is not None and token.expires_at <= now:
        return f"Expired {token.expires_at:%Y-%m-%d}"
    return "Active"


def _page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    *,
    issued: IssuedToken | None = None,
    errors: FieldErrors | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tokens = svc.identity.list_tokens(session.principal, view.project.key)
    now = svc.identity.clock()
    rows = sorted(tokens, key=lambda t: (t.revoked_at is not None, -t.id))
    return render(
        request,
        "tokens.html",
        {
            "session": session,
            "view": view,
            "section": "tokens",
            "title": "Tokens and SDK keys",
            "tokens": [(t, status(t, now)) for t in rows],
            "kinds": KINDS,
            "kind_labels": KIND_LABELS,
            "expiries": EXPIRIES,
            "issued": issued,
            "errors": errors,
            "values": values or {"kind": "server", "expires": "90", "environment": view.env.key},
        },
        status=status_code,
    )


@router.get("/projects/{project}/tokens")
def tokens(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    return _page(request, svc, session, view)


@router.post("/projects/{project}/tokens")
def create_token(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    values = {k: form.text(k) for k in ("name", "kind", "environment", "expires")}
    errors = FieldErrors()
    if not values["name"]:
        errors.add("token-name", "Name the token after where it will be used, e.g. “checkout-api”.")
    elif len(values["name"]) > 200:
        errors.add("token-name", "The name is longer than 200 characters.")
    if values["kind"] not in KIND_LABELS:
        errors.add("token-kind-server", "Choose what the token is for.")
    if values["expires"] not in dict(EXPIRIES):
        errors.add("token-expires", "Choose one of the listed expiry periods.")
    elif values["kind"] == "admin" and not values["expires"]:
        errors.add(
            "token-expires",
            "Admin tokens made in the console expire: choose 30 days, 90 days or 1 year.",
        )
    environment = None
    if values["kind"] in ("server", "client"):
        try:
            environment = view.environment(values["environment"]).key
        except NotFoundError:
            errors.add("token-environment", "Choose the environment the key is for.")
    if errors:
        return _page(request, svc, session, view, errors=errors, values=values, status_code=422)
    days = values["expires"]
    expires = svc.identity.clock() + timedelta(days=int(days)) if days else None
    issued = svc.identity.create_token(
        session.principal, TokenKind(values["kind"]), values["name"], project, environment, expires
    )
    return _page(request, svc, session, view, issued=issued, status_code=201)


@router.post("/projects/{project}/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    token_id: int,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    name = form.text("name") or f"token {token_id}"
    if form.get("confirmed") != "yes":
        return render(
            request,
            "confirm.html",
            {
                "session": session,
                "view": view,
                "section": "tokens",
                "title": f"Revoke {name}?",
                "explanation": "Anything still using it is refused from now on; a revoked "
                "token cannot be brought back (create a new one instead).",
                "action": request.url.path,
                "fields": {"env": view.env.key, "name": name},
                "confirm_label": f"Revoke {name}",
                "danger": True,
                "cancel": view.href("tokens"),
                "with_comment": False,
            },
        )
    svc.identity.revoke_token(session.principal, token_id)
    return redirect(
        request,
        view.href("tokens"),
        f"Revoked {name}. The admin API refuses it now; SDK endpoints, which remember "
        "verified keys for a few seconds, within seconds.",
    )
