"""The cap on request bodies (``FADER_MAX_BODY_BYTES``, 1 MiB by default), applied before
anything reads them.

Why: Starlette buffers a body in full, and FastAPI decodes it, before a handler or a credential
check runs; a 300 MB body sent to the unauthenticated login endpoint took a server to almost
1 GB. Every route is behind the same cap: the JSON API, OFREP, SDK summaries (whose lists are
bounded by count too) and the console's forms.

Applied by the edge (:mod:`fader_server.api.edge`), pure ASGI, so streaming responses pass
untouched:

* a ``Content-Length`` over the cap is answered 413 at once: the application is not called
  and nothing is read (uvicorn discards the rest of the body as it arrives, without keeping it);
* a body without a length (chunked) is counted as the application receives it, and the message
  that crosses the cap raises :class:`BodyTooLargeError` instead of being delivered, so at most
  the cap plus one network read is ever held. FastAPI lets an ``HTTPException`` raised while it
  reads a body through to the exception handlers (:func:`answer_in_routes` adds the one for
  it), the console's page route renders it as a page, and if it escapes anyway the edge
  answers 413 itself as long as the response has not started.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Message, Receive

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


def declared_too_large(content_length: str | None, limit: int) -> bool:
    """Whether the request's ``Content-Length`` already says its body is over `limit`."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


def counted(receive: Receive, limit: int) -> Receive:
    """`receive`, raising :class:`BodyTooLargeError` instead of delivering the message that
    takes the body past `limit` bytes."""
    received = 0

    async def receive_counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return receive_counted


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLargeError)
    return too_large(exc.limit)


def answer_in_routes(app: FastAPI) -> None:
    """Let FastAPI answer :class:`BodyTooLargeError` raised while a route reads its body (the
    edge, :mod:`fader_server.api.edge`, counts what is received and answers the rest)."""
    app.add_exception_handler(BodyTooLargeError, _handle)
