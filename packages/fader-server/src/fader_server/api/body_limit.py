"""The cap on request bodies (``FADER_MAX_BODY_BYTES``, 1 MiB by default), applied before
anything reads them.

Why: Starlette buffers a body in full, and FastAPI decodes it, before a handler or a credential
check runs; a 300 MB body sent to the unauthenticated login endpoint took a server to almost
1 GB. Every route is behind the same cap: the JSON API, OFREP, SDK summaries (whose lists are
bounded by count too) and the console's forms.

Pure ASGI (not ``BaseHTTPMiddleware``), so streaming responses pass untouched:

* a ``Content-Length`` over the cap is answered 413 at once: the application is not called
  and nothing is read (uvicorn discards the rest of the body as it arrives, without keeping it);
* a body without a length (chunked) is counted as the application receives it, and the message
  that crosses the cap raises :class:`BodyTooLargeError` instead of being delivered, so at most
  the cap plus one network read is ever held. FastAPI lets an ``HTTPException`` raised while it
  reads a body through to the exception handlers (:func:`cap_request_bodies` adds the one for
  it), the console's page route renders it as a page, and if it escapes anyway this middleware
  answers 413 itself as long as the response has not started.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fader_server.api.problems import problem


class BodyTooLargeError(HTTPException):
    """The request body is larger than the server reads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            413,
            detail=f"the request body is larger than {limit:,} bytes, the most this server "
            "reads (FADER_MAX_BODY_BYTES); send less per request",
        )


def too_large(limit: int) -> JSONResponse:
    """The 413 problem for a body over `limit` bytes."""
    return problem(
        413,
        "body-too-large",
        "Request body too large",
        str(BodyTooLargeError(limit).detail),
        "user_fixable",
    )


class BodyLimit:
    """Refuse request bodies over `max_bytes` (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0
        started = False

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_watched)
        except BodyTooLargeError:
            if started:
                raise
            await too_large(self.max_bytes)(scope, receive, send)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLargeError)
    return too_large(exc.limit)


def cap_request_bodies(app: FastAPI, max_bytes: int) -> None:
    """Cap request bodies at `max_bytes`; call it after the routes and before the middleware
    that should see the 413 (request ids, logs, CORS), since later middleware wraps earlier."""
    app.add_exception_handler(BodyTooLargeError, _handle)
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
