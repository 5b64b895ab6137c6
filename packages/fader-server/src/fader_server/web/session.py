"""Console sessions: a login token in a cookie, and the cookie policy.

Logging in goes through :meth:`IdentityService.login` (so the login throttle applies) and
yields a personal user token that expires after 12 hours. The console keeps that token itself
in the session cookie: no server-side session table, every replica recognises it, logging out
revokes it (:meth:`IdentityService.revoke_token`) and it stops working everywhere at once.

Cookie policy (sessions ride in secure cookies; docs/adr/0004-console-sessions.md):

- ``HttpOnly`` (scripts cannot read the token), ``SameSite=Lax`` (other sites cannot make the
  browser send it with their forms; CSRF tokens guard the rest, see :mod:`.csrf`), ``Path=/``,
  and an expiry equal to the token's.
- ``Secure`` whenever the request arrived over HTTPS, as uvicorn reports it (directly, or from
  ``X-Forwarded-Proto`` sent by a proxy it trusts: 127.0.0.1 by default, otherwise the
  addresses in ``FORWARDED_ALLOW_IPS``).
- Plain HTTP is accepted only for a loopback host (``127.0.0.1``, ``::1``, ``localhost``): the
  development exception, because browsers would refuse a ``Secure`` cookie there. Over plain
  HTTP to any other host the login form refuses, with an explanation, rather than send a
  password and a session token in clear text across a network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import Depends, Request
from starlette.responses import Response

from fader_server.errors import NotAuthenticatedError
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.web import csrf

SESSION_COOKIE = "fader_session"
FLASH_COOKIE = "fader_flash"
_MAX_FLASH = 300


@dataclass(frozen=True, slots=True)
class Session:
    """The logged-in user of one request."""

    principal: Principal
    token: str
    username: str

    @property
    def csrf(self) -> str:
        return csrf.session_token(self.token)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_is_safe(request: Request) -> bool:
    """HTTPS, or plain HTTP to this machine only (the development exception above)."""
    return request.url.scheme == "https" or is_loopback(request.url.hostname)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, expires: datetime | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        # the cookie date format needs UTC itself (PostgreSQL may hand back another zone object)
        expires=None if expires is None else expires.astimezone(UTC),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_secure(request), httponly=True, samesite="lax")


def start(request: Request, response: Response, token: str, expires: datetime | None) -> None:
    set_cookie(request, response, SESSION_COOKIE, token, expires)


def current(request: Request) -> Session:
    """The session of this request; :class:`NotAuthenticatedError` sends the browser to log in."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotAuthenticatedError("log in to use the console")
    principal = services(request).identity.authenticate(token)
    if principal.user_id is None or not principal.actor.startswith("user:"):
        raise NotAuthenticatedError("the console is for users; log in with a password")
    request.state.actor = principal.actor
    return Session(principal, token, principal.actor.removeprefix("user:"))


def flash(request: Request, response: Response, message: str) -> None:
    """A one-line notice shown (and announced) on the next page the browser renders."""
    set_cookie(request, response, FLASH_COOKIE, quote(message[:_MAX_FLASH]))


def take_flash(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    return unquote(raw)[:_MAX_FLASH] if raw else None


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to after login or an action; anything else (``//evil``,
    ``https://...``, ``/\\evil``) would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ch in target for ch in "\r\n\t") or not target.isprintable():
        return default
    return target


CurrentSession = Annotated[Session, Depends(current)]
Svc = Annotated[Services, Depends(services)]
