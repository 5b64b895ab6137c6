"""The admin API applies the strict JSON rules (:mod:`fader_server.strict_json`: no repeated
keys, no deep nesting, no NUL) to every request, before FastAPI sees it.

The edge (:mod:`fader_server.api.edge`) refuses NUL in the path and the query string
(:func:`location_refusal`), reads a JSON body (already capped by :mod:`.body_limit`), checks it
(:func:`checked_body`), and hands the same bytes on, so FastAPI decodes it
exactly as before; the price is one more decode of at most ``FADER_MAX_BODY_BYTES``, and in
exchange the rules hold for every route, whatever router declared it. A repeated key is a 400
naming the key and where it is; the other problems are a 422 with their paths. OFREP's
evaluation requests are left alone: the protocol has its own error shapes, they store nothing,
and their decoder already refuses deep nesting.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope

from fader_server.api.problems import problem
from fader_server.errors import FieldProblem
from fader_server.strict_json import NUL, JsonInputError, decode, nul_problem


def _location_problems(scope: Scope) -> list[FieldProblem]:
    """NUL characters in the path or the query string (PostgreSQL cannot compare with them)."""
    found = []
    if NUL in scope["path"]:
        found.append(nul_problem("/path", "the path"))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if NUL in name or NUL in value:
            found.append(nul_problem(f"/query/{name.replace(NUL, '')}", f"the parameter {name!r}"))
    return found


def _refusal(
    problems: list[FieldProblem], repeated: list[str], where: str = "/body"
) -> JSONResponse:
    errors = [{"path": where + p.path, "message": p.message} for p in problems]
    if repeated:
        keys = ", ".join(repr(key) for key in repeated)
        return problem(
            400,
            "duplicate-key",
            "Duplicate JSON key",
            f"the request body names {keys} more than once in one object; JSON objects name "
            "each key once: remove the repetition (`errors` says where)",
            "user_fixable",
            errors,
        )
    return problem(
        422,
        "invalid",
        "Invalid request",
        "the request cannot be stored as sent: fix the fields listed in `errors`",
        "user_fixable",
        errors,
    )


def location_refusal(scope: Scope) -> JSONResponse | None:
    """The 422 for NUL characters in the path or the query string, or None. The query string is
    parsed only when it can hold one (a NUL arrives percent-encoded, if at all)."""
    query: bytes = scope.get("query_string", b"")
    if NUL not in scope["path"] and b"%00" not in query and b"\x00" not in query:
        return None
    located = _location_problems(scope)
    return _refusal(located, [], where="") if located else None


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json`` or ``application/*+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def checked_body(receive: Receive) -> tuple[JSONResponse | None, Receive]:
    """Read a JSON body and check it: the refusal to send, or None and a `receive` that gives
    the same bytes again (or whatever interrupted reading) for FastAPI to decode as always."""
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, _replay(b"", message, receive)
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    try:
        if body.strip():
            decode(body)
    except JsonInputError as exc:
        return _refusal(exc.problems, exc.repeated), receive
    except ValueError:
        pass  # not JSON at all: FastAPI answers it as it always has
    return None, _replay(body, None, receive)


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives the body read (or the message that interrupted reading) once,
    then whatever the connection sends next (a disconnect)."""
    pending: Message | None = first or {"type": "http.request", "body": body, "more_body": False}

    async def replayed() -> Message:
        nonlocal pending
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replayed
