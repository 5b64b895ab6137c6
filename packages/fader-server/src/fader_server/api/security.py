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


def services_of(request: Request) -> Services:
    """The app's services; what :data:`Svc` gives, for a route that takes the request instead
    of one more dependency to solve."""
    found: Services = request.app.state.services
    return found


async def services(request: Request) -> Services:
    return services_of(request)


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller. The services are read from the request rather than depended on: FastAPI
    solves every sub-dependency on every request, even one it has cached."""
    identity = services_of(request).identity
    bearer = credentials.credentials if credentials else None
    caller = identity.remembered(bearer)
    if caller is None:  # the lookup reads the database: on a worker thread
        caller = await run_in_threadpool(identity.authenticate, bearer)
    request.state.actor = caller.actor
    return caller


IfMatchHeader = Annotated[
    str | None, Header(alias="If-Match", description="the ETag you read; required on updates")
]
"""The raw ``If-Match`` header, for a route that parses it itself (:func:`parse_if_match`)."""


async def if_match(header: IfMatchHeader = None) -> int | None:
    return parse_if_match(header)


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
IfMatch = Annotated[int | None, Depends(if_match)]
