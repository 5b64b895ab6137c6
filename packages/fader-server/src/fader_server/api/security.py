"""Request-scoped dependencies: the services, and the caller as a :class:`Principal`.

The bearer scheme is declared with FastAPI's ``HTTPBearer`` so the OpenAPI document says how to
authenticate; the check itself is :meth:`IdentityService.authenticate`. The actor is put on
``request.state`` for the request log line (never the token itself).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.versioning import parse_if_match

_bearer = HTTPBearer(
    auto_error=False, description="an admin or user token (fdr_admin_..., fdr_user_...)"
)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    caller = svc.identity.authenticate(credentials.credentials if credentials else None)
    request.state.actor = caller.actor
    return caller


def if_match(
    header: Annotated[
        str | None,
        Header(alias="If-Match", description="the ETag you read; required on updates"),
    ] = None,
) -> int | None:
    return parse_if_match(header)


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
IfMatch = Annotated[int | None, Depends(if_match)]
