"""Unleash's case-insensitive string operators as RE2 patterns over the original value.

Unleash (yggdrasil) lowercases both the context value and each operand with Rust's
``to_lowercase`` and then tests ``starts_with``/``ends_with``/``contains``. Fader has no
lowercasing operator, so each operand becomes a pattern for ``matches`` in which every
character is the class of all characters whose lowercase is that character (``k`` is
``[Kk\\u212a]``: the Kelvin sign lowercases to ``k`` too). RE2's own ``(?i)`` would be wrong:
it folds cases (the long s, U+017F, matches ``s``), which is not what lowercasing does.

Two characters do not lowercase to one character independent of their neighbours, and are
handled exactly: ``İ`` (U+0130) lowercases to ``i`` + U+0307, so it can stand for an operand's
*last* ``i`` in ``contains``/``starts_with`` (the combining dot then falls outside the match)
and nowhere else; capital sigma (U+03A3) lowercases to U+03C3 or, ending a word, to U+03C2,
so operands containing either (or U+0307) are refused. The tables are Python's (Unicode 14 in
Python 3.11); Rust's may be newer, and characters given a lowercase since then (a handful) would
compare differently: docs/migration-unleash.md lists this limit.
"""

from __future__ import annotations

from functools import cache

from fader_server.migration.unleash.conditions import UntranslatableError

_DOTTED_I = "\u0130"
_SIGMA = "\u03a3"
_REFUSED = frozenset("\u03c3\u03c2\u0307")


@cache
def _uppers() -> dict[str, tuple[str, ...]]:
    """Lowercase character -> the *other* characters whose lowercase is exactly it.

    Lowercasing all of Unicode as one string keeps positions (only the two characters left
    out change length or depend on neighbours) and is much faster than per character.
    """
    chars = (
        "".join(map(chr, (*range(0xD800), *range(0xE000, 0x110000))))
        .replace(_DOTTED_I, "")
        .replace(_SIGMA, "")
    )
    lowered = chars.lower()
    if len(lowered) != len(chars):  # pragma: no cover - a Unicode database we do not know
        raise RuntimeError("lowercasing changed the length of Unicode; refusing to guess")
    table: dict[str, list[str]] = {}
    for char, lower in zip(chars, lowered, strict=True):
        if char != lower:
            table.setdefault(lower, []).append(char)
    return {k: tuple(v) for k, v in table.items()}


def _sources(char: str) -> list[str]:
    """Every character whose lowercase is exactly `char`."""
    own = [char] if char.lower() == char and char not in (_DOTTED_I, _SIGMA) else []
    return own + list(_uppers().get(char, ()))


def _class(chars: tuple[str, ...] | list[str]) -> str:
    inner = "".join(f"\\x{{{ord(c):x}}}" for c in chars)
    return f"[{inner}]"


def lowercase_pattern(operand: str, mode: str) -> str:
    """An RE2 pattern true exactly when lower(value) `mode`s lower(operand).

    `mode` is ``contains``, ``starts_with``, ``ends_with`` or ``equals``.
    """
    needle = operand.lower()
    if _REFUSED & set(needle):
        raise UntranslatableError(
            "caseInsensitive operand",
            f"{operand!r} contains a Greek sigma or a combining dot above, whose lowercase "
            "depends on the neighbouring letters; Fader has no exact equivalent",
        )
    parts: list[str] = []
    for index, char in enumerate(needle):
        chars = _sources(char)
        last = index == len(needle) - 1
        if char == "i" and last and mode in ("contains", "starts_with"):
            chars.append(_DOTTED_I)
        parts.append(_class(chars))
    body = "".join(parts)
    if mode == "starts_with":
        return r"\A" + body
    if mode == "ends_with":
        return body + r"\z"
    if mode == "equals":
        return r"\A" + body + r"\z"
    return body
