"""LaunchDarkly's readings of clause values, reproduced exactly so that Fader's clauses agree.

The SDK (``ldclient.impl.model.value_parsing`` and ``ldclient.impl.operators``) parses clause
values once when it loads a flag and context values at every evaluation. Translation needs the
same readings without importing the SDK (translation is pure and the SDK is optional):

* versions: python-semver's strict grammar, retried with ``.0`` inserted after the leading
  digits and dots, twice (so ``1.2`` is 1.2.0 and ``1`` is 1.0.0); ``v1.2.3`` is *not* a
  version to LaunchDarkly, while Fader accepts the ``v``;
* instants: a number is Unix *milliseconds*; a string is whatever ``datetime.fromisoformat``
  reads after a trailing ``Z`` becomes ``+00:00`` (pyrfc3339), and only with a UTC offset;
* regular expressions: Python's :mod:`re`, searched; a pattern ``re`` cannot compile matches
  nothing (the SDK drops it), see :func:`re2_pattern` for how it becomes an RE2 pattern.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from fader_engine.errors import RegexError
from fader_engine.regex import compile_pattern

_EPOCH = datetime.fromtimestamp(0, UTC)
_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    r"(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,
)
_LEADING_NUMBERS = re.compile(r"([0-9.]*)(.*)", re.DOTALL)


class UntranslatableValueError(ValueError):
    """A clause value whose LaunchDarkly meaning no Fader clause value can carry."""


def is_number(value: Any) -> bool:
    """A JSON number; a boolean is not one (LaunchDarkly and Fader agree)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def ld_version(value: Any) -> str | None:
    """The canonical text of `value` read as LaunchDarkly reads versions, or ``None``."""
    if not isinstance(value, str):
        return None
    text = value
    for _ in range(3):
        match = _SEMVER.fullmatch(text)
        if match is not None:
            out = f"{int(match['major'])}.{int(match['minor'])}.{int(match['patch'])}"
            if match["pre"] is not None:
                out += "-" + match["pre"]
            if match["build"] is not None:
                out += "+" + match["build"]
            return out
        head = _LEADING_NUMBERS.match(text)
        text = f"{head[1]}.0{head[2]}" if head is not None else text + ".0"
    return None


def ld_time_ms(value: Any) -> float | None:
    """Unix milliseconds of a clause or context value as LaunchDarkly reads it, or ``None``."""
    if is_number(value):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(re.sub("Z$", "+00:00", value, flags=re.IGNORECASE))
        return (parsed - _EPOCH).total_seconds() * 1000.0
    except (ValueError, TypeError, OverflowError):  # TypeError: no UTC offset
        return None


def seconds_before(limit_ms: float) -> float:
    """The least float `x` with ``x * 1000.0 >= limit_ms``.

    LaunchDarkly compares a date string's seconds times 1000.0 with the clause's milliseconds;
    Fader compares seconds. Since float multiplication by 1000.0 is monotonic, "x * 1000.0 <
    limit" is exactly "x < seconds_before(limit)": the same answer for every parsed date,
    rounding included.
    """
    x = limit_ms / 1000.0
    while x * 1000.0 < limit_ms:
        x = math.nextafter(x, math.inf)
    while (lower := math.nextafter(x, -math.inf)) * 1000.0 >= limit_ms:
        x = lower
    return x


def seconds_after(limit_ms: float) -> float:
    """The greatest float `x` with ``x * 1000.0 <= limit_ms`` (see :func:`seconds_before`)."""
    x = limit_ms / 1000.0
    while x * 1000.0 > limit_ms:
        x = math.nextafter(x, -math.inf)
    while (higher := math.nextafter(x, math.inf)) * 1000.0 <= limit_ms:
        x = higher
    return x


def python_pattern(value: Any) -> re.Pattern[str] | None:
    """The pattern as the SDK compiles it (``None``: it never matches)."""
    if not isinstance(value, str):
        return None
    try:
        return re.compile(value)
    except (re.error, OverflowError, RecursionError):
        return None


_REJECTED_ESCAPES = {
    "w": "\\w (a word character) is Unicode-aware in Python and ASCII-only in RE2",
    "W": "\\W (a non-word character) is Unicode-aware in Python and ASCII-only in RE2",
    "s": "\\s (whitespace) covers more characters in Python than in RE2",
    "S": "\\S (non-whitespace) covers more characters in Python than in RE2",
    "b": "\\b (a word boundary) is Unicode-aware in Python and ASCII-only in RE2",
    "B": "\\B (not a word boundary) is Unicode-aware in Python and ASCII-only in RE2",
    "Z": "\\Z has no RE2 equivalent",
}


def re2_pattern(pattern: str) -> str:
    """An RE2 pattern that finds a match in exactly the strings Python's `pattern` does.

    Most syntax means the same in both. Where it does not, the pattern is rewritten when an
    exact RE2 form exists (``\\d`` is Python's Unicode decimal digit, RE2's ``\\p{Nd}``; a final
    ``$`` also matches before a trailing newline in Python, RE2's ``(?:\\n?\\z)``) and refused
    otherwise (``\\w``, ``\\s``, ``\\b``, flags such as ``(?i)``, lookaround, backreferences,
    possessive quantifiers, ``{,n}``, POSIX classes, a ``$`` before more pattern).
    Raises :class:`UntranslatableValueError` saying why.
    """
    out: list[str] = []
    i, n, in_class, depth = 0, len(pattern), False, 0
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            if escaped in _REJECTED_ESCAPES:
                raise UntranslatableValueError(_REJECTED_ESCAPES[escaped])
            if escaped.isdigit():
                raise UntranslatableValueError(
                    "backreferences and octal escapes differ between Python and RE2"
                )
            out.append({"d": "\\p{Nd}", "D": "\\P{Nd}"}.get(escaped, pattern[i : i + 2]))
            i += 2
            continue
        if in_class:
            if char == "[" and pattern.startswith("[:", i):
                raise UntranslatableValueError("POSIX classes such as [[:alpha:]] are RE2-only")
            if char == "]" and not _class_start(pattern, i):
                in_class = False
        elif char == "[":
            in_class = True
        elif char == "(":
            if pattern.startswith("(?", i) and not (
                pattern.startswith("(?:", i) or pattern.startswith("(?P<", i)
            ):
                raise UntranslatableValueError(
                    "inline flags, lookaround, comments and atomic groups (?...) are not "
                    "translated; only (?:...) and (?P<name>...) groups are"
                )
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "{" and pattern.startswith("{,", i):
            raise UntranslatableValueError("{,n} is a repetition in Python and literal in RE2")
        elif char in "*+?}" and i + 1 < n and pattern[i + 1] == "+":
            raise UntranslatableValueError("possessive quantifiers are Python-only")
        elif char == "$":
            if i + 1 == n or (pattern[i + 1] == "|" and depth == 0):
                out.append("(?:\\n?\\z)")
                i += 1
                continue
            raise UntranslatableValueError("'$' is only translated at the end of the pattern")
        out.append(char)
        i += 1
    translated = "".join(out)
    try:
        compile_pattern(translated)
    except RegexError as exc:
        raise UntranslatableValueError(f"RE2 cannot compile it: {exc}") from None
    return translated


def _class_start(pattern: str, i: int) -> bool:
    """Whether the ``]`` at `i` is the literal first member of a class (``[]a]``, ``[^]a]``)."""
    return pattern[i - 1] == "[" or (pattern[i - 1] == "^" and i >= 2 and pattern[i - 2] == "[")


def ld_matches(op: str, values: list[Any], value: Any) -> bool:
    """Whether LaunchDarkly's operator matches one scalar context value (used for the values
    LaunchDarkly assumes when a Fader context lacks the attribute: kind "user", anonymous
    false)."""
    for operand in values:
        if op == "in":
            if isinstance(operand, bool) == isinstance(value, bool) and operand == value:
                return True
        elif isinstance(value, str) and isinstance(operand, str):
            if op == "startsWith" and value.startswith(operand):
                return True
            if op == "endsWith" and value.endswith(operand):
                return True
            if op == "contains" and operand in value:
                return True
            compiled = python_pattern(operand) if op == "matches" else None
            if compiled is not None and compiled.search(value) is not None:
                return True
    # Numbers, instants and versions: neither "user" nor false is one.
    return False
