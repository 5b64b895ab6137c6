"""The limits of a Fader document: how deep it nests, how large it is, how many of each thing
it holds (``docs/flag-format.md``, "Limits").

Why the engine enforces them and not each of its users: every SDK, the CLI and the server load
documents through :func:`fader_engine.parse.parse_document`, so a limit checked here is one they
all agree on, and a document the server accepts is one every SDK can load. The limits keep
reading a document bounded in time and memory (the server validates every environment's
document on every write) and keep every value servable: JSON encoders refuse values nested a
few hundred levels deep (pydantic stops at 255), so a value accepted deeper could be stored but
never served again.

Two kinds of check:

* :func:`check_bounds` walks the whole decoded document once, without recursion, before
  anything else reads it: nesting, strings (their length, and no NUL character, which
  PostgreSQL cannot store) and total size. A document over one of these is rejected at once,
  because they are what makes reading the rest safe and cheap.
* :func:`check_count` and :func:`check_value_depth` are called by the parsers where they read a
  list or a free-form value, so the problem names that list or value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fader_engine.errors import Problem
from fader_engine.parse_fields import Problems, child

__all__ = [
    "MAX_CLAUSES",
    "MAX_CLAUSE_VALUES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_SIZE",
    "MAX_RULES",
    "MAX_SEGMENT_KEYS",
    "MAX_STRING_LENGTH",
    "MAX_VALUE_DEPTH",
    "MAX_VARIANTS",
    "check_bounds",
    "check_count",
    "check_value_depth",
    "measure",
]

MAX_VALUE_DEPTH = 32
"""Levels of arrays and objects a variant value or a document metadata value may nest."""
MAX_DOCUMENT_DEPTH = 64
"""Levels the document as a whole may nest; its fixed structure takes at most 8, so only a
free-form value can come near it, and that one is held to :data:`MAX_VALUE_DEPTH` anyway."""
MAX_STRING_LENGTH = 65_536
"""Characters of any string of the document, object keys included."""
MAX_DOCUMENT_SIZE = 10_000_000
"""Characters of the document as compact JSON (about 10 MB)."""
MAX_VARIANTS = 1_000
"""Variants of one flag."""
MAX_RULES = 1_000
"""Targeting rules of one flag or one segment."""
MAX_CLAUSES = 100
"""Clauses of one rule."""
MAX_CLAUSE_VALUES = 10_000
"""Values of one clause."""
MAX_SEGMENT_KEYS = 50_000
"""Targeting keys in a segment's ``included``, and as many in its ``excluded``."""

_MAX_REPORTED = 20
"""Bound problems stop being collected after this many: a document that breaks a limit
thousands of times needs one fix, not thousands of messages."""
_LIMITS = 'see "Limits" in docs/flag-format.md'
_NUL = "\x00"


_Link = tuple["_Link | None", str | int] | None
"""How the walk reached a container: (how it reached the parent, the token); ``None`` for the
root. Paths are spelled out from these only when a problem is reported."""


def _pointer(link: _Link, *tokens: str | int) -> str:
    reversed_tokens: list[str | int] = []
    while link is not None:
        link, token = link
        reversed_tokens.append(token)
    path = ""
    for token in [*reversed(reversed_tokens), *tokens]:
        path = child(path, token)
    return path


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list | tuple | Mapping)


def _scalar_size(value: Any) -> int:
    """Characters of a non-string scalar in compact JSON."""
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, int):
        # digits from the bit length: str() of a huge int is slow, and refused past 4300 digits
        return abs(value).bit_length() * 30_103 // 100_000 + 2
    if isinstance(value, float):
        return len(repr(value))
    return 0  # not JSON: the parser reports its type


def check_bounds(data: Any) -> list[Problem]:
    """The nesting, string (length, NUL) and size problems of a decoded document (at most
    20; a document that is not a JSON object is reported by the parser).

    One iterative walk (a stack, no recursion), so a document nested 100,000 levels deep is
    reported, not a ``RecursionError``; a container too deep is reported and not entered, and
    the walk stops as soon as the size is over the limit. It runs before every parse, so it
    does as little as it can per item: paths are spelled out only for problems.
    """
    problems, size = measure(data)
    if size > MAX_DOCUMENT_SIZE:
        problems.append(
            Problem(
                "",
                f"the document is larger than {MAX_DOCUMENT_SIZE:,} characters of JSON; "
                "split it, or move large lists (segment keys, clause values) out of it "
                f"({_LIMITS})",
            )
        )
    return problems[:_MAX_REPORTED]


def measure(data: Any, tokens: tuple[str | int, ...] = ()) -> tuple[list[Problem], int]:
    """The nesting and string problems of `data`, found at `tokens` in a document (the document
    itself by default), and its size in characters of compact JSON: the walk of
    :func:`check_bounds`, which stops after 20 problems or once the size is over the limit.

    Why a part of a document: sizes add up, so a patched document's size is its previous
    size plus what the replaced entries grew by (:mod:`fader_engine.parse_patch`), and only
    those entries need walking. `data` is a container (anything else measures 0, as the
    document itself does); it is level ``len(tokens) + 1`` of the document.
    """
    problems: list[Problem] = []
    size = 0
    link: _Link = None
    for token in tokens:
        link = (link, token)
    stack: list[tuple[Any, int, _Link]] = []
    if _is_container(data):
        stack.append((data, len(tokens) + 1, link))
    while stack and len(problems) < _MAX_REPORTED and size <= MAX_DOCUMENT_SIZE:
        container, level, link = stack.pop()
        size += 2 + len(container)  # brackets and separators
        items: Iterable[tuple[str | int, Any]]
        if isinstance(container, Mapping):
            items = container.items()
            for key in container:
                if isinstance(key, str):
                    size += len(key) + 3
                    if len(key) > MAX_STRING_LENGTH:
                        what = f"the key {key[:40]!r}..."
                        problems.append(_long_string(_pointer(link), what, len(key)))
                    if _NUL in key:
                        problems.append(_nul(_pointer(link), f"the key {key[:40]!r}"))
        elif container and all(type(item) is str for item in container):
            # the large lists (segment keys, clause values) hold strings: measured in C
            lengths = list(map(len, container))
            size += sum(lengths) + 2 * len(lengths)
            if max(lengths) <= MAX_STRING_LENGTH and _NUL not in "".join(container):
                continue
            items = enumerate(container)
        else:
            items = enumerate(container)
        for token, value in items:
            kind = type(value)
            if kind is str:
                size += len(value) + 2
                if len(value) > MAX_STRING_LENGTH:
                    at = _pointer(link, token)
                    problems.append(_long_string(at, "this string", len(value)))
                if _NUL in value:
                    problems.append(_nul(_pointer(link, token), "this string"))
            elif kind is dict or kind is list or _is_container(value):
                if level >= MAX_DOCUMENT_DEPTH:
                    problems.append(_too_deep(_pointer(link, token)))
                else:
                    stack.append((value, level + 1, (link, token)))
            else:
                size += _scalar_size(value)
    return problems, size


def _nul(path: str, what: str) -> Problem:
    return Problem(
        path,
        f"{what} contains a NUL character (U+0000), which PostgreSQL cannot store; remove it "
        f"({_LIMITS})",
    )


def _too_deep(path: str) -> Problem:
    return Problem(
        path,
        f"the document nests more than {MAX_DOCUMENT_DEPTH} levels of arrays and objects here, "
        f"so it is not read further (variant values nest at most {MAX_VALUE_DEPTH} levels; "
        f"{_LIMITS})",
    )


def _long_string(path: str, what: str, length: int) -> Problem:
    return Problem(
        path,
        f"{what} is {length:,} characters long; strings have at most "
        f"{MAX_STRING_LENGTH:,} characters ({_LIMITS})",
    )


def check_count(
    value: Any, limit: int, path: str, where: str, what: str, problems: Problems
) -> bool:
    """Whether `value`, when it is a list or an object, holds at most `limit` items; if not,
    the problem is recorded at `path` (the caller then skips reading the items)."""
    if not isinstance(value, list | Mapping) or len(value) <= limit:
        return True
    problems.add(
        path,
        f"{where} has {len(value):,} {what}; at most {limit:,} are allowed ({_LIMITS})",
    )
    return False


def _items(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, Mapping):
        return iter(value.items())
    return enumerate(value)


def _first_too_deep(value: Any, limit: int) -> list[str | int] | None:
    """The tokens from `value` to its first container at a level deeper than `limit` (`value`
    itself, when a container, is level 1), or ``None``; iterative, like :func:`check_bounds`."""
    if not _is_container(value):
        return None
    if limit < 1:
        return []
    tokens: list[str | int] = []
    stack = [_items(value)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            if tokens:
                tokens.pop()
            continue
        token, item = entry
        if _is_container(item):
            if len(stack) >= limit:
                return [*tokens, token]
            tokens.append(token)
            stack.append(_items(item))
    return None


def check_value_depth(value: Any, path: str, what: str, problems: Problems) -> bool:
    """Whether the free-form `value` (a variant's value, document metadata) nests at most
    :data:`MAX_VALUE_DEPTH` levels; if not, the problem points at the first level too deep."""
    tokens = _first_too_deep(value, MAX_VALUE_DEPTH)
    if tokens is None:
        return True
    at = path
    for token in tokens:
        at = child(at, token)
    problems.add(
        at,
        f"{what} nests more than {MAX_VALUE_DEPTH} levels of arrays and objects here; values "
        f"nest at most {MAX_VALUE_DEPTH} levels: flatten it, or keep the data elsewhere and "
        f"serve a reference to it ({_LIMITS})",
    )
    return False
