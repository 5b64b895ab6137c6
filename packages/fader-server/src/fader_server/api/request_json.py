"""Strict reading of JSON that people send: no repeated keys, no deep nesting, no NUL.

Why each rule:

* **repeated keys** (``{"enabled": false, "enabled": true}``): JSON leaves their meaning open
  (RFC 8259 §4); Python keeps the last, other parsers the first, so a proxy, an audit tool and
  Fader could each read a different request. Refused: 400 naming the key and where it is.
* **nesting** over :data:`MAX_DEPTH` levels: Python's decoder recurses (about a thousand levels
  raise ``RecursionError``), and a value nested past what the JSON encoders serve (pydantic
  stops at 255 levels) could be stored but never read back. Refused: 422 with the path. Flag
  documents are held to tighter limits by the engine (``docs/flag-format.md``, "Limits").
* **NUL characters** (U+0000): PostgreSQL cannot store them in text or ``jsonb`` while SQLite
  can, so the same request would succeed on one backend and fail on the other. Refused on
  both: 422 naming the field.

:func:`decode` applies them to a text (the console's JSON fields use it). :class:`InputGuard`
applies them to every JSON request body before FastAPI sees it, and refuses NUL in the path
and the query string too. It reads the body (already capped by :mod:`.body_limit`), checks it,
and hands the same bytes on, so FastAPI decodes it exactly as before; the price is one more
decode of at most ``FADER_MAX_BODY_BYTES``, and in exchange the rules hold for every route,
whatever router declared it. OFREP's evaluation requests are left alone: the protocol has its
own error shapes, they store nothing, and their decoder already refuses deep nesting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fader_server.api.problems import problem
from fader_server.errors import FieldProblem

MAX_DEPTH = 64
"""Levels of arrays and objects a request body may nest (a flag document nests at most 64
levels too, its variant values 32: ``docs/flag-format.md``, "Limits")."""
_MAX_REPORTED = 20
_NUL = "\x00"
_OFREP = "/ofrep/"


class JsonInputError(Exception):
    """JSON that is well formed but breaks one of the rules above: `.problems` has the paths
    (JSON pointers into the decoded value), `.repeated` the keys named twice in one object."""

    def __init__(self, problems: list[FieldProblem], repeated: list[str]) -> None:
        super().__init__("; ".join(f"{p.path or '/'}: {p.message}" for p in problems))
        self.problems = problems
        self.repeated = repeated


class _Repeated(dict[str, Any]):
    """An object whose text named some keys more than once (the last value of each is kept);
    only the checks below ever see one."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    decoded = dict(pairs)
    if len(decoded) == len(pairs):
        return decoded
    seen: set[str] = set()
    repeated: set[str] = set()
    for key, _ in pairs:
        (repeated if key in seen else seen).add(key)
    marked = _Repeated(decoded)
    marked.repeated = sorted(repeated)
    return marked


def _pointer(tokens: Iterable[str | int]) -> str:
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def decode(text: str | bytes) -> Any:
    """`text` as JSON under the rules of the module docstring.

    Raises what :func:`json.loads` raises for text that is not JSON (``ValueError``, so callers
    keep their usual handling), and :class:`JsonInputError` for JSON that breaks a rule.
    """
    try:
        value = json.loads(text, object_pairs_hook=_object)
    except RecursionError:
        message = f"the value nests more than {MAX_DEPTH} levels of arrays and objects"
        raise JsonInputError([FieldProblem("", message)], []) from None
    problems, repeated = _check(value)
    if problems:
        raise JsonInputError(problems, repeated)
    return value


def _check(value: Any) -> tuple[list[FieldProblem], list[str]]:
    """Nesting, NUL characters and repeated keys (also returned by name) in a decoded value:
    one walk with a stack, no recursion; a container too deep is reported and not entered."""
    problems: list[FieldProblem] = []
    repeated: list[str] = []
    if isinstance(value, str):
        if _NUL in value:
            problems.append(_nul(""))
        return problems, repeated
    stack: list[tuple[Any, tuple[str | int, ...]]] = []
    if isinstance(value, dict | list):
        stack.append((value, ()))
    while stack and len(problems) < _MAX_REPORTED:
        container, path = stack.pop()
        if isinstance(container, dict):
            if isinstance(container, _Repeated):
                repeated.extend(container.repeated)
                for key in container.repeated:
                    problems.append(
                        FieldProblem(
                            _pointer(path),
                            f"the key {key!r} appears more than once in this object; "
                            "name each key once",
                        )
                    )
            items: Iterable[tuple[str | int, Any]] = container.items()
            if any(_NUL in key for key in container):
                problems.append(_nul(_pointer(path), "a key of this object"))
        elif all(type(item) is str for item in container):
            if _NUL not in "".join(container):
                continue
            items = enumerate(container)
        else:
            items = enumerate(container)
        for token, item in items:
            if isinstance(item, str):
                if _NUL in item:
                    problems.append(_nul(_pointer((*path, token))))
            elif isinstance(item, dict | list):
                if len(path) + 1 >= MAX_DEPTH:
                    problems.append(
                        FieldProblem(
                            _pointer((*path, token)),
                            f"the value nests more than {MAX_DEPTH} levels of arrays and "
                            "objects here",
                        )
                    )
                else:
                    stack.append((item, (*path, token)))
    return problems[:_MAX_REPORTED], repeated


def _nul(path: str, what: str = "this string") -> FieldProblem:
    return FieldProblem(
        path, f"{what} contains a NUL character (U+0000), which Fader does not store; remove it"
    )


def _is_json(headers: Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _location_problems(scope: Scope) -> list[FieldProblem]:
    """NUL characters in the path or the query string (PostgreSQL cannot compare with them)."""
    found = []
    if _NUL in scope["path"]:
        found.append(_nul("/path", "the path"))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _NUL in name or _NUL in value:
            found.append(_nul(f"/query/{name.replace(_NUL, '')}", f"the parameter {name!r}"))
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


class InputGuard:
    """Apply the rules of the module docstring to every request (pure ASGI, see there)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        located = _location_problems(scope)
        if located:
            await _refusal(located, [], where="")(scope, receive, send)
            return
        if scope["path"].startswith(_OFREP) or not _is_json(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            if body.strip():
                decode(body)
        except JsonInputError as exc:
            await _refusal(exc.problems, exc.repeated)(scope, receive, send)
            return
        except ValueError:
            pass  # not JSON at all: FastAPI answers it as it always has
        await self.app(scope, _replay(body, None, receive), send)


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
