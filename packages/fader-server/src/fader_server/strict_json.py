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

:func:`decode` applies them to a text. Both entry points that take JSON from people use it:
the admin API for every request body (:class:`fader_server.api.request_json.InputGuard`) and
the console for its JSON fields, which is why it sits beside them rather than inside either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fader_server.errors import FieldProblem

MAX_DEPTH = 64
"""Levels of arrays and objects a request body may nest (a flag document nests at most 64
levels too, its variant values 32: ``docs/flag-format.md``, "Limits")."""
_MAX_REPORTED = 20
NUL = "\x00"


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
        if NUL in value:
            problems.append(nul_problem(""))
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
            if any(NUL in key for key in container):
                problems.append(nul_problem(_pointer(path), "a key of this object"))
        elif all(type(item) is str for item in container):
            if NUL not in "".join(container):
                continue
            items = enumerate(container)
        else:
            items = enumerate(container)
        for token, item in items:
            if isinstance(item, str):
                if NUL in item:
                    problems.append(nul_problem(_pointer((*path, token))))
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


def nul_problem(path: str, what: str = "this string") -> FieldProblem:
    """A NUL character at `path` (a JSON pointer), said of `what`."""
    return FieldProblem(
        path, f"{what} contains a NUL character (U+0000), which Fader does not store; remove it"
    )
