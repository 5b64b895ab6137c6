"""Semantic versions (SemVer 2.0) as comparable keys, for the `semver_*` operators.

Apps report versions loosely (``v2.3``, ``2``), so besides strict
``MAJOR.MINOR.PATCH[-pre][+build]`` we accept a leading ``v`` and a missing minor or patch,
padded with zeros (``1.2`` is ``1.2.0``).
Everything else follows the spec: numeric identifiers have no leading zeros, build metadata is
kept but ignored for precedence, and a prerelease sorts before its release.

The same function parses clause values (validation) and context attributes (evaluation), so
both sides always agree on what counts as a version.

Spec: https://semver.org/spec/v2.0.0.html#spec-item-11
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VersionKey", "parse_version"]

_NUMBER = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"v?(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER})(?:\.(?P<patch>{_NUMBER}))?)?"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?",
    re.ASCII,
)
_NUMERIC_IDENT = re.compile(r"[0-9]+", re.ASCII)

_PrereleaseKey = tuple[tuple[int, int, str], ...]


@dataclass(frozen=True, slots=True, order=True)
class VersionKey:
    """A parsed version ordered by SemVer precedence (``<``, ``==``, ... all follow the spec).

    Only `major`, `minor`, `patch` and the hidden precedence tail take part in comparisons;
    `prerelease` and `build` are kept for display. Two versions differing only in build
    metadata compare equal, as the spec requires.
    """

    major: int
    minor: int
    patch: int
    _tail: tuple[int, _PrereleaseKey] = field(repr=False)
    prerelease: tuple[int | str, ...] = field(default=(), compare=False)
    build: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(part) for part in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def _prerelease(text: str | None) -> tuple[tuple[int | str, ...], tuple[int, _PrereleaseKey]]:
    """Identifiers and their precedence tail; ``None`` text is a release (sorts last)."""
    if text is None:
        return (), (1, ())
    parts: list[int | str] = []
    keys: list[tuple[int, int, str]] = []
    for ident in text.split("."):
        if _NUMERIC_IDENT.fullmatch(ident):
            number = int(ident)
            parts.append(number)
            # Numeric identifiers sort numerically and before alphanumeric ones (spec 11.4).
            keys.append((0, number, ""))
        else:
            parts.append(ident)
            keys.append((1, 0, ident))
    return tuple(parts), (0, tuple(keys))


def parse_version(value: Any) -> VersionKey | None:
    """Parse a version string; ``None`` when `value` is not a string or not a valid version."""
    if not isinstance(value, str):
        return None
    match = _VERSION.fullmatch(value)
    if match is None:
        return None
    pre = match["pre"]
    if pre is not None and any(
        len(ident) > 1 and ident[0] == "0" and _NUMERIC_IDENT.fullmatch(ident)
        for ident in pre.split(".")
    ):
        return None  # numeric prerelease identifiers must not have leading zeros (spec 9)
    parts, tail = _prerelease(pre)
    build = tuple(match["build"].split(".")) if match["build"] else ()
    return VersionKey(
        major=int(match["major"]),
        minor=int(match["minor"] or 0),
        patch=int(match["patch"] or 0),
        _tail=tail,
        prerelease=parts,
        build=build,
    )
