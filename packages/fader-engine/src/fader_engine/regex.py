"""Compiling RE2 patterns, shared by validation (:mod:`fader_engine.parse`) and the compiler.

Fader's `matches` operator uses RE2 rather than :mod:`re` because RE2 runs in time linear in the
input: a pattern written by one team can never hang evaluation for everyone (no catastrophic
backtracking). The price is that RE2 rejects lookaround and backreferences; :func:`compile_pattern`
turns RE2's terse errors into messages that say so.

Spec: https://github.com/google/re2/wiki/Syntax
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]

from fader_engine.errors import RegexError

__all__ = ["RegexError", "compile_pattern"]


def _options() -> Any:
    options = re2.Options()
    # RE2 logs rejected patterns to stderr by default; a rejected user pattern is a Problem we
    # report ourselves, not noise for the server's log.
    options.log_errors = False
    return options


_HINTS: tuple[tuple[str, str], ...] = (
    ("(?<=", "RE2 does not support lookbehind"),
    ("(?<!", "RE2 does not support lookbehind"),
    ("(?=", "RE2 does not support lookahead"),
    ("(?!", "RE2 does not support lookahead"),
)


def _explain(pattern: str, raw: str) -> str:
    for needle, hint in _HINTS:
        if needle in raw:
            return f"{hint} ({raw})"
    if "invalid escape sequence: \\" in raw and raw[-1:].isdigit():
        return f"RE2 does not support backreferences ({raw})"
    return raw


def compile_pattern(pattern: str) -> Any:
    """Compile `pattern` with RE2 (silently); raise :class:`RegexError` if RE2 rejects it.

    Returns RE2's compiled pattern object (its ``search`` method is what `matches` uses).
    """
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else str(exc)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        raise RegexError(pattern, _explain(pattern, str(raw))) from None
