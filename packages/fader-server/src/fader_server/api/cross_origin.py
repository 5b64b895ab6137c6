"""CORS for the OFREP paths only; the admin API and the console stay same-origin.

Browser apps are OFREP's main users (client keys ride in headers, never in cookies), so any web
origin may call ``/ofrep/...``, send the key headers and read the ETag. Preflights are answered
by Starlette's :class:`~starlette.middleware.cors.CORSMiddleware` logic (its
``preflight_response``), configured once here. The headers of an ordinary (simple) response are
what that middleware would add for this policy (every origin allowed, no credentials), added by
:func:`simple_headers` in one pass over the response's header list: the edge
(:mod:`fader_server.api.edge`) applies them to every OFREP answer, from a route or from the SDK
fast path alike.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

PREFIX = "/ofrep/"
"""Paths under this prefix are open to every origin."""

_POLICY = CORSMiddleware(
    app=None,  # type: ignore[arg-type]  # only its preflight answers are used
    allow_origins=["*"],
    allow_methods=["GET", "POST"],
    allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-None-Match", "Last-Event-ID"],
    expose_headers=["ETag", "Retry-After"],
    max_age=3600,
)
_ALLOWED: list[tuple[bytes, bytes]] = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in _POLICY.simple_headers.items()
]
_ALLOWED_NAMES = frozenset(name for name, _ in _ALLOWED)
_VARY = b"vary"


def is_preflight(method: str, origin: str | None, requested_method: str | None) -> bool:
    """A CORS preflight, as the middleware recognises one: ``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``."""
    return method == "OPTIONS" and origin is not None and requested_method is not None


def preflight(request_headers: Headers) -> Response:
    """The answer to a preflight (200 with the allowed methods and headers, or 400 naming what
    the policy refuses)."""
    return _POLICY.preflight_response(request_headers=request_headers)


def simple_headers(
    headers: list[tuple[bytes, bytes]], *, origin: bool
) -> list[tuple[bytes, bytes]]:
    """`headers` (lowercase names, as responses send them) with the policy's headers: when the
    request came with an ``Origin``, ``Access-Control-Allow-Origin: *`` and the exposed headers
    (replacing any the response set); and ``Vary`` extended with ``Origin`` in every case."""
    vary = [value for name, value in headers if name == _VARY]
    kept = [
        (name, value)
        for name, value in headers
        if name != _VARY and not (origin and name in _ALLOWED_NAMES)
    ]
    if origin:
        kept += _ALLOWED
    kept.append((_VARY, b", ".join([*vary, b"Origin"])))
    return kept
