"""Single sign-on for `fader login --sso` (docs/sso.md): authorization code with PKCE through a
loopback redirect (RFC 8252), where the Fader server, the confidential client holding the
client secret, redeems the code and hands the CLI a personal token in a POST response.

1. ``POST /api/v1/auth/sso/{provider}/start`` with the CLI's loopback ``redirect_uri``
   (``http://127.0.0.1:<port>/callback``) and its PKCE ``code_challenge``: the answer is the
   provider's authorization URL for the browser, and ``flow``, the attempt (see
   :mod:`fader_server.services.sso_flow`), which the CLI keeps in memory.
2. The person signs in at the provider; their browser brings ``code`` and ``state`` to the
   CLI's loopback listener.
3. ``POST /api/v1/auth/sso/{provider}/token`` with ``flow``, ``state``, ``code`` and the
   ``code_verifier``: the server checks the state against the attempt, redeems the code with
   its client secret and the verifier, validates the ID token (nonce included), brings the
   user's roles in line with their groups, and answers with a personal token valid for 12
   hours, stored hashed like every token.

The token never travels in a URL and no secret is logged: the code in the loopback URL is
useless without the verifier, which only the CLI holds until it redeems it. Both routes take
no credentials (like ``/auth/login``); they work whether or not password login is allowed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from pydantic import Field

from fader_server.api import problems
from fader_server.api.identity import token_out
from fader_server.api.schemas import Strict, TokenCreated
from fader_server.errors import (
    FieldProblem,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
)
from fader_server.runtime.oidc import OidcError, SingleSignOn
from fader_server.services.sso_flow import Flow, is_loopback_redirect
from fader_server.services.sso_providers import SsoProvider

router = APIRouter(prefix="/api/v1/auth/sso", tags=["identity"], responses=problems.API_ERRORS)

ProviderId = Annotated[str, Path(max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Pkce = Annotated[str, Field(min_length=43, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")]


class SsoProviderOut(Strict):
    id: str
    name: str


class SsoStartIn(Strict):
    redirect_uri: str = Field(
        max_length=100, description="the CLI's loopback listener: http://127.0.0.1:<port>/callback"
    )
    code_challenge: Pkce = Field(description="PKCE S256 challenge of the CLI's code_verifier")


class SsoStartOut(Strict):
    authorization_url: str = Field(description="open this in the browser")
    flow: str = Field(description="the attempt; send it back with the code, keep it private")


class SsoTokenIn(Strict):
    flow: str = Field(max_length=4096)
    state: str = Field(max_length=200)
    code: str = Field(min_length=1, max_length=4096)
    code_verifier: Pkce


def _sso(request: Request) -> SingleSignOn:
    found: SingleSignOn = request.app.state.sso
    return found


def _provider(sso: SingleSignOn, provider_id: str) -> SsoProvider:
    provider = sso.config.get(provider_id)
    if provider is None:
        known = ", ".join(sso.config.providers) or "none is configured"
        raise NotFoundError(f"no single sign-on provider '{provider_id}' (known: {known})")
    return provider


@router.get("/providers")
def list_providers(request: Request) -> list[SsoProviderOut]:
    """The single sign-on providers this server offers (no credentials needed)."""
    return [SsoProviderOut(id=p.id, name=p.name) for p in _sso(request).config.providers.values()]


@router.post("/{provider_id}/start")
def start(provider_id: ProviderId, body: SsoStartIn, request: Request) -> SsoStartOut:
    """Begin a sign-in for a CLI listening on a loopback address (RFC 8252)."""
    sso = _sso(request)
    provider = _provider(sso, provider_id)
    if not is_loopback_redirect(body.redirect_uri):
        message = "redirect_uri must be http://127.0.0.1:<port>/callback (port 1024 or above)"
        raise InvalidInputError(message, [FieldProblem("/body/redirect_uri", message)])
    flow = Flow.begin(provider.id, body.redirect_uri, "cli", sso.service.clock())
    try:
        url = sso.client.authorization_url(
            provider, body.redirect_uri, flow.state, flow.nonce, body.code_challenge
        )
    except OidcError as exc:
        raise NotAuthenticatedError(str(exc)) from exc
    return SsoStartOut(authorization_url=url, flow=flow.encode())


@router.post("/{provider_id}/token", status_code=status.HTTP_201_CREATED)
def token(provider_id: ProviderId, body: SsoTokenIn, request: Request) -> TokenCreated:
    """Redeem the code the loopback listener received for a personal token (12 hours)."""
    sso = _sso(request)
    provider = _provider(sso, provider_id)
    flow = Flow.decode(body.flow)
    if flow is None or flow.provider != provider.id or not flow.matches(body.state):
        raise NotAuthenticatedError(
            "this answer does not belong to the sign-in in progress; run `fader login --sso` again"
        )
    if flow.expired(sso.service.clock()) or not is_loopback_redirect(flow.redirect_uri):
        raise NotAuthenticatedError("this sign-in took longer than 10 minutes; start again")
    try:
        exchanged = sso.client.exchange(
            provider, body.code, flow.redirect_uri, body.code_verifier, flow.nonce
        )
    except OidcError as exc:
        raise NotAuthenticatedError(str(exc)) from exc
    signed_in = sso.service.sign_in(
        provider, exchanged.identity, f"fader login --sso {provider.id}"
    )
    issued = signed_in.issued
    return TokenCreated(**token_out(issued.token, None).model_dump(), token=issued.secret)
