"""Logging in and out of the console."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import NotAuthenticatedError, TooManyAttemptsError
from fader_server.services.identity import LOCAL_LOGIN_OFF
from fader_server.web import csrf, sso
from fader_server.web import session as sessions
from fader_server.web.forms import CheckedForm, FieldErrors, LoginForm
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Svc

router = page_router()

_PLAINTEXT = (
    "This console is being reached over plain HTTP from another machine, so your password and "
    "session would cross the network unencrypted; Fader refuses to log in that way. Open the "
    "console through an HTTPS reverse proxy (it must send X-Forwarded-Proto: https and be "
    "trusted: on the same host, or listed in FORWARDED_ALLOW_IPS), or use http://127.0.0.1 "
    "on the server itself."
)
NextPath = Annotated[str | None, Query(alias="next", max_length=2000)]


def _login_page(
    request: Request,
    next_path: str | None,
    *,
    username: str = "",
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    secret = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_login_secret()
    response = render(
        request,
        "login.html",
        {
            "session": None,
            "view": None,
            "title": "Log in",
            "next": sessions.safe_next(next_path, ""),
            "username": username,
            "errors": errors,
            "login_token": csrf.login_token(secret),
            "plaintext": None if sessions.transport_is_safe(request) else _PLAINTEXT,
            "providers": sso.providers_for_login(request, sessions.safe_next(next_path, "")),
            "local_login": sessions.services(request).identity.local_login,
        },
        status=status,
    )
    sessions.set_cookie(request, response, csrf.LOGIN_COOKIE, secret)
    return response


@router.get("/login")
def login_form(request: Request, next_path: NextPath = None) -> Response:
    try:
        sessions.current(request)
    except NotAuthenticatedError:
        return _login_page(request, next_path)
    return redirect(request, sessions.safe_next(next_path, "/projects"))


@router.post("/login")
def login(request: Request, svc: Svc, form: LoginForm) -> Response:
    username = form.text("username")
    password = form.get("password")
    next_path = form.get("next")
    errors = FieldErrors()
    if not sessions.transport_is_safe(request):
        errors.add(None, _PLAINTEXT)
        return _login_page(request, next_path, username=username, errors=errors, status=403)
    if not svc.identity.local_login:
        errors.add(None, LOCAL_LOGIN_OFF[:1].upper() + LOCAL_LOGIN_OFF[1:] + ".")
        return _login_page(request, next_path, username=username, errors=errors, status=403)
    if not username:
        errors.add("username", "Enter your username.")
    if not password:
        errors.add("password", "Enter your password.")
    if errors:
        return _login_page(request, next_path, username=username, errors=errors, status=422)
    address = request.client.host if request.client else "unknown"
    try:
        issued = svc.identity.login(username, password, address)
    except NotAuthenticatedError:
        errors.add("password", "Unknown user or wrong password. Check both and try again.")
        return _login_page(request, next_path, username=username, errors=errors, status=422)
    except TooManyAttemptsError as exc:
        errors.add(None, exc.detail[:1].upper() + exc.detail[1:] + ".")
        response = _login_page(request, next_path, username=username, errors=errors, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = redirect(request, sessions.safe_next(next_path, "/projects"))
    sessions.start(request, response, issued.secret, issued.token.expires_at)
    sessions.clear_cookie(request, response, csrf.LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, svc: Svc, session: CurrentSession, form: CheckedForm) -> Response:
    token_id = session.principal.token_id
    if token_id is not None:
        svc.identity.revoke_token(session.principal, token_id)
    response: Response = redirect(request, "/login", "You have logged out. Your session was ended.")
    end_session = sso.provider_logout(request, response)
    if end_session is not None:
        # A page, not a redirect: the console's form-action policy would stop a form's
        # navigation from leaving the site; the page moves on by itself (and offers a link).
        provider_page = render(
            request,
            "sso_logout.html",
            {"session": None, "view": None, "title": "Logged out", "end_session": end_session},
        )
        for cookie in response.headers.getlist("set-cookie"):
            provider_page.headers.append("set-cookie", cookie)
        response = provider_page
    sessions.clear_cookie(request, response, sessions.SESSION_COOKIE)
    return response
