"""The parser's field-level vocabulary: collecting problems and reading typed JSON fields.

Shared by :mod:`fader_engine.parse`, :mod:`fader_engine.parse_flags` and
:mod:`fader_engine.parse_clauses`. Every reader *reports* what is wrong and returns ``None``
instead of raising, so one pass over a document finds every problem, not just the first.
Nothing here knows what a flag or a segment is; callers pass a `where` phrase
("rule 1 of flag 'x'") that makes each message name the flag, the rule and the field.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from fader_engine.errors import Problem

KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*", re.ASCII)
MAX_KEY_LENGTH = 128


class Problems:
    """Accumulates :class:`Problem` values during one parse."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(Problem(path, message))


def child(path: str, token: str | int) -> str:
    """`path` extended by one JSON-pointer token (``~`` and ``/`` escaped, RFC 6901)."""
    text = str(token).replace("~", "~0").replace("/", "~1")
    return f"{path}/{text}"


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages ("a string", "an object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    """A finite JSON number; booleans are not numbers even though Python says they are ints."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def suggestion(word: str, choices: Collection[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice (case-insensitive), or ``""``."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def quoted(names: Collection[str]) -> str:
    return ", ".join(repr(name) for name in names)


def check_key(key: str, path: str, what: str, problems: Problems) -> bool:
    """Flag and segment keys: ``[a-z0-9][a-z0-9._-]*``, at most 128 characters."""
    if len(key) > MAX_KEY_LENGTH:
        problems.add(
            path,
            f"{what} key {key[:20]!r}... is {len(key)} characters long; "
            f"keys have at most {MAX_KEY_LENGTH}",
        )
        return False
    if KEY_PATTERN.fullmatch(key) is None:
        problems.add(
            path,
            f"{what} key {key!r} is invalid; keys start with a lowercase letter "
            "or digit and contain only a-z, 0-9, '.', '_' and '-'",
        )
        return False
    return True


def read_object(
    value: Any,
    path: str,
    where: str,
    problems: Problems,
    *,
    known: Collection[str],
    required: Collection[str] = (),
) -> Mapping[str, Any] | None:
    """`value` as an object whose fields are all `known` and include every `required` one."""
    if not isinstance(value, Mapping):
        problems.add(path, f"{where} must be a JSON object, not {json_type(value)}")
        return None
    for name in value:
        if name not in known:
            problems.add(
                child(path, name),
                f"unknown field {name!r} in {where}{suggestion(str(name), known)}",
            )
    for name in required:
        if name not in value:
            problems.add(child(path, name), f"{where} is missing the required field {name!r}")
    return value


def read_string(
    obj: Mapping[str, Any], name: str, path: str, where: str, problems: Problems
) -> str | None:
    """An optional string field (``None`` when absent or reported as wrong)."""
    if name not in obj:
        return None
    value = obj[name]
    if not isinstance(value, str):
        problems.add(
            child(path, name), f"field {name!r} of {where} must be a string, not {json_type(value)}"
        )
        return None
    return value


def read_bool(
    obj: Mapping[str, Any], name: str, default: bool, path: str, where: str, problems: Problems
) -> bool:
    """An optional boolean field; `default` when absent or reported as wrong."""
    value = obj.get(name, default)
    if not isinstance(value, bool):
        problems.add(
            child(path, name),
            f"field {name!r} of {where} must be true or false, not {json_type(value)}",
        )
        return default
    return value


def read_list(
    obj: Mapping[str, Any], name: str, path: str, where: str, problems: Problems
) -> list[Any] | None:
    """An optional array field (``None`` when absent or reported as wrong)."""
    if name not in obj:
        return None
    value = obj[name]
    if not isinstance(value, list):
        problems.add(
            child(path, name), f"field {name!r} of {where} must be an array, not {json_type(value)}"
        )
        return None
    return value


def read_strings(
    obj: Mapping[str, Any], name: str, path: str, where: str, problems: Problems
) -> tuple[str, ...]:
    """An optional array of strings; wrong items are reported and dropped."""
    items = read_list(obj, name, path, where, problems) or []
    out: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
        else:
            problems.add(
                child(child(path, name), index),
                f"item {index} of {name!r} in {where} must be a string, not {json_type(item)}",
            )
    return tuple(out)
