"""The one ASGI layer in front of FastAPI's whole stack: what every HTTP request gets before any
route runs, and the request's log line and metrics after.

In order, per request:

1. a request id: the client's ``X-Request-Id`` when printable (64 characters kept), else a
   random one; on ``request.state``, in the log context, and on the response;
2. CORS for the OFREP paths (:mod:`.cross_origin`): preflights answered here, the policy's
   headers added to every other OFREP answer;
3. the body cap (:mod:`.body_limit`): a declared length over it is a 413 before anything is
   read, a counted body raises once it crosses it;
4. the input rules (:mod:`.request_json`): NUL in the path or the query string is a 422; a
   JSON body outside OFREP is checked against the strict rules before FastAPI decodes it;
5. the SDK fast path (:mod:`.sdk_fast_path`): a poll or an OFREP evaluation whose answer is
   in memory is answered here, without entering FastAPI;
6. FastAPI (its error handling, routing and the routes).

Every response, of the API and of the console alike, carries ``X-Request-Id`` and
``X-Content-Type-Options: nosniff``, so a browser never reinterprets a JSON body or a problem
document (which can echo input) as HTML or script. The log line is written once the request is
over, with the route's template and path parameters (project, environment, flag) and the actor
that :mod:`fader_server.api.security` (or the fast path) put on the request's state.

Why one layer rather than a middleware per concern: each pure-ASGI middleware costs a coroutine
call and a wrapped ``send``/``receive`` per request, and five of them in a row, with FastAPI's
own three, were about a quarter of the CPU of a warm SDK request (issue 18's profile). Standing
outside FastAPI also gives the 500 that FastAPI's error middleware writes the request id, and
lets a fast answer skip Starlette altogether. Pure ASGI (not ``BaseHTTPMiddleware``), so
streaming responses are never buffered.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fader_server.api import body_limit, cross_origin, problems, request_json, sdk_fast_path
from fader_server.api.http_metrics import HttpMetrics
from fader_server.api.sdk_fast_path import SdkFastPath
from fader_server.logs import get_logger

_REQUEST_ID = b"x-request-id"
_NOSNIFF_NAME = b"x-content-type-options"
_NOSNIFF = (_NOSNIFF_NAME, b"nosniff")
_READ = (
    frozenset(
        {
            _REQUEST_ID,
            b"origin",
            b"content-length",
            b"content-type",
            b"access-control-request-method",
        }
    )
    | sdk_fast_path.HEADERS
)
"""The request headers the edge and the fast path read, found in one pass over the raw list."""


def _read_headers(scope: Scope) -> dict[bytes, str]:
    """The first value of each header in :data:`_READ` (as Starlette's ``Headers.get`` finds
    it), decoded as latin-1; ASGI servers send names lowercased."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers") or ():
        if name in _READ and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _request_id(supplied: str | None) -> str:
    """The caller's id when it is printable, so a caller can follow its request through the
    logs; otherwise 128 random bits in hex."""
    if supplied:
        kept = supplied[:64]
        if kept.isprintable():
            return kept
    return secrets.token_hex(16)


class _Response:
    """What the edge learns of the response it relays: its status, and whether it started."""

    __slots__ = ("started", "status")

    def __init__(self) -> None:
        self.started = False
        self.status = 500  # what the log says when no response started (the request failed)


class Edge:
    """See the module docstring. `app` is FastAPI's own stack; `fast_path`, when given, answers
    SDK requests from memory."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
        fast_path: SdkFastPath | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.fast_path = fast_path
        # Bound once, to the configuration of the app's creation: the lazy logger would look
        # its processors up again on every request line (a third of the line's cost).
        self.log = get_logger().bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _read_headers(scope)
        request_id = _request_id(headers.get(_REQUEST_ID))
        scope.setdefault("state", {})["request_id"] = request_id
        marks = (_REQUEST_ID, request_id.encode())
        method: str = scope["method"]
        origin = headers.get(b"origin")
        open_to_origins = scope["path"].startswith(cross_origin.PREFIX)
        preflight = open_to_origins and cross_origin.is_preflight(
            method, origin, headers.get(b"access-control-request-method")
        )
        simple_cors = open_to_origins and not preflight
        response = _Response()

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.started = True
                response.status = message["status"]
                sent = [*message.get("headers", ()), marks]
                if simple_cors:
                    sent = cross_origin.simple_headers(sent, origin=origin is not None)
                # Names compared as sent: Starlette's responses and the fast path lowercase
                # them, as ASGI asks (the console's pages set this header themselves).
                if not any(name == _NOSNIFF_NAME for name, _ in sent):
                    sent.append(_NOSNIFF)
                message["headers"] = sent
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if preflight:
                await cross_origin.preflight(Headers(scope=scope))(scope, receive, send_marked)
            else:
                await self._guarded(scope, receive, send_marked, headers, response)
        finally:
            self._record(scope, method, started, response.status)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, str],
        response: _Response,
    ) -> None:
        """Steps 3 to 6 of the module docstring."""
        limit = self.max_body_bytes
        if body_limit.declared_too_large(headers.get(b"content-length"), limit):
            await body_limit.too_large(limit)(scope, receive, send)
            return
        refusal = request_json.location_refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        receive = body_limit.counted(receive, limit)
        try:
            if not scope["path"].startswith(cross_origin.PREFIX) and request_json.is_json(
                headers.get(b"content-type")
            ):
                refusal, receive = await request_json.checked_body(receive)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
            fast_path = self.fast_path
            template = fast_path.wanted(scope) if fast_path is not None else None
            if fast_path is not None and template is not None:
                passed_on = await self._fast(
                    fast_path, scope, receive, send, template, headers, response
                )
                if passed_on is None:
                    return
                receive = passed_on
            await self.app(scope, receive, send)
            if fast_path is not None and template is not None:
                fast_path.learn(scope, template)
        except body_limit.BodyTooLargeError:
            if response.started:
                raise
            await body_limit.too_large(limit)(scope, receive, send)

    async def _fast(
        self,
        fast_path: SdkFastPath,
        scope: Scope,
        receive: Receive,
        send: Send,
        template: str,
        headers: dict[bytes, str],
        response: _Response,
    ) -> Receive | None:
        """The fast path's answer (None) or the `receive` to pass on with. A failure there is
        answered as FastAPI answers one in a route (logged, a 500 problem with the request
        id), since FastAPI's error handling is not around it."""
        try:
            return await fast_path.answer(scope, receive, send, template, headers)
        except body_limit.BodyTooLargeError:
            raise
        except Exception:
            if response.started:
                raise
            answer = problems.internal_error(scope["state"]["request_id"])
            await answer(scope, receive, send)
            return None

    def _record(self, scope: Scope, method: str, started: float, status: int) -> None:
        """The request's metrics and its log line."""
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", "unmatched")
        params = scope.get("path_params") or {}
        counted, timed = self.metrics.children(method, template, status)
        counted.inc()
        timed.observe(elapsed)
        self.log.info(
            "request",
            method=method,
            path=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            actor=scope["state"].get("actor"),
            project=params.get("project"),
            environment=params.get("environment"),
            flag=params.get("flag"),
        )


class FaderApp(FastAPI):
    """FastAPI with an :class:`Edge` in front of everything it runs, its own middleware
    included (see :meth:`install_edge`)."""

    edge: Edge | None = None

    def install_edge(
        self, *, metrics: HttpMetrics, max_body_bytes: int, fast_path: SdkFastPath | None
    ) -> None:
        self.edge = Edge(
            self._inner, metrics=metrics, max_body_bytes=max_body_bytes, fast_path=fast_path
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge
        if edge is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
        else:
            await edge(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
