"""Request-scoped dependencies: the services, and the caller as a :class:`Principal`.

Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` dependency on a worker
thread, a hop per dependency per request. A caller whose token lookup is cached is known on the
event loop; only a lookup that reads the database goes to a thread.

The bearer scheme is declared with FastAPI's ``HTTPBearer`` so the OpenAPI document says how to
authenticate; the check itself is :meth:`IdentityService.authenticate`. The actor is put on
``request.state`` for the request log line (never the token itself).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.versioning import parse_if_match

_bearer = HTTPBearer(
    auto_error=False, description="an admin or user token (fdr_admin_..., fdr_user_...)"
)


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    bearer = credentials.credentials if credentials else None
    caller = svc.identity.remembered(bearer)
    if caller is None:  # the lookup reads the database: on a worker thread
        caller = await run_in_threadpool(svc.identity.authenticate, bearer)
    request.state.actor = caller.actor
    return caller


async def if_match(
    header: Annotated[
        str | None,
        Header(alias="If-Match", description="the ETag you read; required on updates"),
    ] = None,
) -> int | None:
    return parse_if_match(header)


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
IfMatch = Annotated[int | None, Depends(if_match)]
