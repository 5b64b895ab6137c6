"""Users, login and API tokens. Token secrets appear in exactly one response: their creation.

Login is throttled per username and client address, per username and per client address (see
:mod:`fader_server.services.login_throttle`); the address is the TCP peer, or the
``X-Forwarded-For`` client when uvicorn trusts the proxy that sent it (``--forwarded-allow-ips``,
127.0.0.1 by default), so a reverse proxy must be trusted or every user shares its address.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from fader_server.api import problems
from fader_server.api.schemas import (
    MAX_INTEGER,
    LoginIn,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from fader_server.api.security import Caller, Svc
from fader_server.services.identity import IssuedToken
from fader_server.storage.ports import Token, TokenKind

router = APIRouter(prefix="/api/v1", tags=["identity"], responses=problems.API_ERRORS)


def token_out(token: Token, project: str | None) -> TokenOut:
    return TokenOut(
        id=token.id,
        kind=token.kind.value,
        name=token.name,
        project=project,
        environment=token.environment_key,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        created_by=token.created_by,
        last_used_at=token.last_used_at,
    )


def _created(issued: IssuedToken, project: str | None) -> TokenCreated:
    return TokenCreated(**token_out(issued.token, project).model_dump(), token=issued.secret)


# The problem schema and Retry-After header come from `problems`; the limits are login's own.
_THROTTLED = {
    code: {
        **declared,
        "description": (
            "Too many failed logins: for this username from this address (after 5, waits "
            "from 30 seconds doubling to 15 minutes), for this username from all addresses "
            "(100 in 15 minutes) or from this address (100 in 15 minutes); category "
            "`retryable`, and `Retry-After` and `detail` say when to retry."
        ),
    }
    for code, declared in problems.responses(status.HTTP_429_TOO_MANY_REQUESTS).items()
}


@router.post("/auth/login", status_code=status.HTTP_201_CREATED, responses=_THROTTLED)
def login(body: LoginIn, svc: Svc, request: Request) -> TokenCreated:
    """Exchange username and password for a personal token valid for 12 hours.

    Failed attempts are limited per username and client address, per username and per client
    address (429 with `Retry-After`); a successful login clears the count of its username and
    address. Limits are shared by all replicas.
    """
    address = request.client.host if request.client else "unknown"
    return _created(svc.identity.login(body.username, body.password, address), None)


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserIn, svc: Svc, caller: Caller) -> UserOut:
    user = svc.identity.create_user(caller, body.username, body.password)
    return UserOut(username=user.username, instance_admin=user.instance_admin)


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, svc: Svc, caller: Caller) -> TokenCreated:
    issued = svc.identity.create_token(
        caller, TokenKind(body.kind), body.name, body.project, body.environment, body.expires_at
    )
    return _created(issued, body.project)


@router.get("/tokens")
def list_tokens(
    svc: Svc,
    caller: Caller,
    project: Annotated[str | None, Query(max_length=128, description="omit for global")] = None,
) -> list[TokenOut]:
    return [token_out(t, project) for t in svc.identity.list_tokens(caller, project)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_INTEGER)], svc: Svc, caller: Caller
) -> None:
    svc.identity.revoke_token(caller, token_id)
