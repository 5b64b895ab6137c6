"""Users, login and API tokens. Token secrets appear in exactly one response: their creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from fader_server.api.schemas import LoginIn, TokenCreated, TokenIn, TokenOut, UserIn, UserOut
from fader_server.api.security import Caller, Svc
from fader_server.services.identity import IssuedToken
from fader_server.storage.ports import Token, TokenKind

router = APIRouter(prefix="/api/v1", tags=["identity"])


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
    )


def _created(issued: IssuedToken, project: str | None) -> TokenCreated:
    return TokenCreated(**token_out(issued.token, project).model_dump(), token=issued.secret)


@router.post("/auth/login", status_code=status.HTTP_201_CREATED)
def login(body: LoginIn, svc: Svc) -> TokenCreated:
    """Exchange username and password for a personal token valid for 12 hours."""
    return _created(svc.identity.login(body.username, body.password), None)


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
def revoke_token(token_id: int, svc: Svc, caller: Caller) -> None:
    svc.identity.revoke_token(caller, token_id)
