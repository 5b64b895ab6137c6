"""Signing in to the console with an OpenID provider (docs/sso.md).

``GET /login/sso/{provider}`` begins an attempt (:mod:`fader_server.services.sso_flow`): the
attempt is kept in an ``HttpOnly`` cookie and the browser goes to the provider with ``state``,
``nonce`` and a PKCE S256 challenge derived from it. The provider sends the browser back to
``GET /login/sso/{provider}/callback``, the exact redirect URI registered there, where the
state is checked against the cookie, the code redeemed with the verifier, the ID token
validated (:mod:`fader_server.runtime.oidc`) and a session started as after a password login.
The cookie is cleared on the way back, so the same answer cannot be used twice.

Every failure is a page that says what happened and offers to sign in again: a refusal or
cancellation at the provider, an attempt this browser did not start (or started too long
ago, or already finished), a provider that cannot be reached or answers wrongly.

Logging out (:mod:`.auth`) also ends the provider's session when it advertises an
``end_session_endpoint``: the ID token kept for that purpose in its own ``HttpOnly`` cookie
becomes the ``id_token_hint``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Query, Request
from starlette.responses import RedirectResponse, Response

from fader_server.runtime.oidc import OidcError, SingleSignOn
from fader_server.services.sso_flow import Flow, challenge_of
from fader_server.services.sso_providers import SsoProvider
from fader_server.web import session as sessions
from fader_server.web.rendering import render
from fader_server.web.routing import page_router

router = page_router()

FLOW_COOKIE = "fader_sso"
LOGOUT_COOKIE = "fader_sso_logout"
MAX_LOGOUT_COOKIE = 3800
"""Browsers keep cookies up to about 4 KiB; a larger ID token is not kept, and logging out
then ends the Fader session only (docs/sso.md)."""

ProviderId = Annotated[str, Path(max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Param = Annotated[str | None, Query(max_length=4096)]


def single_sign_on(request: Request) -> SingleSignOn:
    found: SingleSignOn = request.app.state.sso
    return found


def base_url(request: Request, sso: SingleSignOn) -> str:
    """The console's external address: configured (``FADER_PUBLIC_URL``), else this request's."""
    return sso.public_url or str(request.base_url).rstrip("/")


def callback_uri(request: Request, sso: SingleSignOn, provider: SsoProvider) -> str:
    return f"{base_url(request, sso)}/login/sso/{provider.id}/callback"


def _failed(
    request: Request, status: int, title: str, detail: str, provider: SsoProvider | None
) -> Response:
    response = render(
        request,
        "sso_error.html",
        {
            "session": None,
            "view": None,
            "title": title,
            "detail": detail,
            "status": status,
            "provider": provider,
        },
        status=status,
    )
    sessions.clear_cookie(request, response, FLOW_COOKIE)
    return response


def _unknown(request: Request, provider_id: str) -> Response:
    return _failed(
        request,
        404,
        "Unknown sign-in provider",
        f"This server has no single sign-on provider '{provider_id}'.",
        None,
    )


@router.get("/login/sso/{provider_id}")
def begin(
    request: Request,
    provider_id: ProviderId,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> Response:
    sso = single_sign_on(request)
    provider = sso.config.get(provider_id)
    if provider is None:
        return _unknown(request, provider_id)
    if not sessions.transport_is_safe(request):
        return _failed(
            request,
            403,
            "Not over this connection",
            "Open the console over HTTPS (or http://127.0.0.1 on the server itself) to sign in.",
            provider,
        )
    redirect_uri = callback_uri(request, sso, provider)
    flow = Flow.begin(
        provider.id, redirect_uri, sessions.safe_next(next_path, "/projects"), sso.service.clock()
    )
    try:
        target = sso.client.authorization_url(
            provider, redirect_uri, flow.state, flow.nonce, challenge_of(flow.verifier)
        )
    except OidcError as exc:
        return _failed(request, 502, f"{provider.name} cannot be reached", str(exc), provider)
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookie(request, response, FLOW_COOKIE, flow.encode())
    return response


@router.get("/login/sso/{provider_id}/callback")
def callback(
    request: Request,
    provider_id: ProviderId,
    code: Param = None,
    state: Param = None,
    error: Param = None,
    error_description: Param = None,
) -> Response:
    sso = single_sign_on(request)
    provider = sso.config.get(provider_id)
    if provider is None:
        return _unknown(request, provider_id)
    if error is not None:
        said = f" It said: {error_description[:300]}" if error_description else ""
        reason = (
            "You cancelled, or did not give Fader consent."
            if error == "access_denied"
            else f"The provider answered '{error[:80]}'."
        )
        return _failed(
            request,
            400,
            "Sign-in was not completed",
            f"{provider.name} did not sign you in. {reason}{said}",
            provider,
        )
    flow = Flow.decode(request.cookies.get(FLOW_COOKIE))
    if flow is None or flow.provider != provider.id or not state or not flow.matches(state):
        return _failed(
            request,
            400,
            "This sign-in is not the one in progress",
            "The answer from the provider does not belong to a sign-in this browser started, "
            "or it was used already (reloaded or opened twice). Nothing was signed in. "
            "Start again from the login page.",
            provider,
        )
    if flow.expired(sso.service.clock()):
        return _failed(
            request,
            400,
            "This sign-in took too long",
            "Sign-ins must finish within 10 minutes of starting. Start again.",
            provider,
        )
    if not code:
        return _failed(
            request, 400, "Sign-in was not completed", "The provider sent no code.", provider
        )
    try:
        exchanged = sso.client.exchange(
            provider, code, flow.redirect_uri, flow.verifier, flow.nonce
        )
    except OidcError as exc:
        return _failed(request, 400, "Sign-in was refused", str(exc), provider)
    signed_in = sso.service.sign_in(
        provider, exchanged.identity, f"console sign-in ({provider.id})"
    )
    response = RedirectResponse(sessions.safe_next(flow.next_path, "/projects"), status_code=303)
    issued = signed_in.issued
    sessions.start(request, response, issued.secret, issued.token.expires_at)
    sessions.clear_cookie(request, response, FLOW_COOKIE)
    logout_hint = f"{provider.id}.{exchanged.id_token}"
    if len(logout_hint) <= MAX_LOGOUT_COOKIE:
        sessions.set_cookie(request, response, LOGOUT_COOKIE, logout_hint, issued.token.expires_at)
    return response


def provider_logout(request: Request, response: Response) -> str | None:
    """The provider's end-session URL for the session being ended (and forget its ID
    token), or None when it did not sign in there or the provider has no such endpoint."""
    kept = request.cookies.get(LOGOUT_COOKIE)
    sessions.clear_cookie(request, response, LOGOUT_COOKIE)
    if not kept or "." not in kept:
        return None
    sso = single_sign_on(request)
    provider_id, id_token = kept.split(".", 1)
    provider = sso.config.get(provider_id)
    if provider is None:
        return None
    try:
        return sso.client.end_session_url(provider, id_token, base_url(request, sso) + "/login")
    except OidcError:
        return None  # the Fader session is over either way


def providers_for_login(request: Request, next_path: str) -> list[tuple[str, str]]:
    """(button text, link) for each provider, in configuration order."""
    suffix = f"?next={quote(next_path)}" if next_path else ""
    return [
        (p.name, f"/login/sso/{p.id}{suffix}")
        for p in single_sign_on(request).config.providers.values()
    ]
