"""Unleash constraints as Fader clauses, exactly as yggdrasil (Unleash's engine) evaluates them.

What yggdrasil does, and what each constraint becomes (docs/migration-unleash.md has the
table): every context value is a string; ``IN``/``NOT_IN`` compare strings (``NOT_IN`` is true
for a missing field); ``STR_*`` test affixes, lowercasing both sides when ``caseInsensitive``;
``NUM_*`` parse the value as a 64-bit float (``NUM_EQ`` is ``|a - b| < f64::EPSILON``);
``DATE_*`` parse an RFC 3339 instant; ``SEMVER_*`` parse a strict SemVer 2.0 version; an
unparseable or missing value fails the test, and ``inverted`` negates the *result*, so an
inverted constraint on a missing field is true. The positive test becomes Fader clauses (false
on a missing attribute, as in Unleash); a constraint true on a missing field becomes the
negation of its positive test through a helper segment (:mod:`.conditions`).

Constraints are compiled by Unleash into a small rule language; values that do not parse
there make the whole flag always off, and values it parses as another type than the operator
says (``NUM_GT "1.2.3"`` compares versions) behave unlike the operator: both are refused.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

from fader_engine.instant import parse_instant
from fader_server.migration.unleash.casefold import lowercase_pattern
from fader_server.migration.unleash.conditions import (
    ALWAYS,
    NEVER,
    Alternatives,
    HelperSegments,
    UntranslatableError,
)
from fader_server.migration.unleash.context import TOP_LEVEL, USER_ID, typed_values

# Operand shapes yggdrasil's rule grammar accepts for each operator family.
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_ID = r"(?:0|[1-9][0-9]{0,18})"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_STRICT_SEMVER = (
    rf"{_ID}\.{_ID}\.{_ID}(?:-{_PRE}(?:\.{_PRE})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_SEMVER = re.compile(_STRICT_SEMVER, re.ASCII)
SEMVER_CONTEXT = rf"\A{_STRICT_SEMVER}\z"
"""Context versions Unleash parses (strict SemVer; Fader alone would also take ``v1.2``)."""
DATE_CONTEXT = (
    r"\A(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(?:0[1-9]|1[0-2])-"
    r"(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\z"
)
"""Context instants both Unleash and Fader read the same way (docs: send currentTime so)."""
_EXACT_LIMIT = 2.0**53
"""Beyond this an integer attribute and Unleash's float reading of its digits may differ."""
_EPSILON = 2.0**-52

_STRING_OPS: Mapping[str, tuple[str, Callable[[str, str], bool]]] = {
    "STR_CONTAINS": ("contains", lambda value, operand: operand in value),
    "STR_STARTS_WITH": ("starts_with", lambda value, operand: value.startswith(operand)),
    "STR_ENDS_WITH": ("ends_with", lambda value, operand: value.endswith(operand)),
}
_NUMBER_OPS = {"NUM_GT": "gt", "NUM_GTE": "gte", "NUM_LT": "lt", "NUM_LTE": "lte"}
_DATE_OPS = {"DATE_AFTER": "after", "DATE_BEFORE": "before"}
_SEMVER_OPS = {
    "SEMVER_EQ": "semver_eq",
    "SEMVER_GT": "semver_gt",
    "SEMVER_LT": "semver_lt",
    "SEMVER_GTE": "semver_gte",
    "SEMVER_LTE": "semver_lte",
}
OPERATORS = frozenset(
    {"IN", "NOT_IN", "NUM_EQ", *_STRING_OPS, *_NUMBER_OPS, *_DATE_OPS, *_SEMVER_OPS}
)


def attribute(field: Any) -> str:
    """The Fader attribute for an Unleash context field (``userId`` is the targeting key)."""
    if not isinstance(field, str) or not field:
        raise UntranslatableError("contextName", "a constraint names no context field")
    if '"' in field or "\\" in field:
        raise UntranslatableError(
            f"contextName {field!r}",
            "quotes and backslashes break Unleash's rule compiler (the flag is always off)",
        )
    if field == "userId":
        return USER_ID
    if field in TOP_LEVEL:
        return field
    if "." in field or field in (USER_ID, "properties"):
        raise UntranslatableError(
            f"contextName {field!r}",
            "a property whose name contains a dot (or is 'targetingKey'/'properties') has "
            "no Fader attribute: dots reach into nested attributes in Fader",
        )
    return field


def check_operand(text: Any, what: str) -> str:
    """A string operand that survives Unleash's rule compiler unchanged."""
    if not isinstance(text, str):
        raise UntranslatableError(what, f"{text!r} is not a string")
    if "\\" in text:
        raise UntranslatableError(
            what,
            f"{text!r} contains a backslash, which Unleash's rule compiler reads as an escape",
        )
    return text


def membership(attr: str, texts: list[str]) -> Alternatives:
    """The field's string is one of `texts` (missing: false)."""
    if not texts:
        return NEVER
    values: list[Any] = []
    for text in texts:
        values += typed_values(text)
    return [[{"attribute": attr, "op": "in", "values": _dedupe(values)}]]


def _dedupe(values: list[Any]) -> list[Any]:
    seen: set[tuple[type, Any]] = set()
    out = []
    for value in values:
        key = (type(value), value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _booleans(test: Callable[[str], bool]) -> list[bool]:
    return [b for b, text in ((True, "true"), (False, "false")) if test(text)]


def _strings(
    attr: str, op: str, operands: list[str], ignore_case: bool, helpers: HelperSegments
) -> Alternatives:
    mode, test = _STRING_OPS[op]
    if not operands:
        raise UntranslatableError(
            f"{op} without values", "Unleash cannot compile it (the flag is always off)"
        )
    if ignore_case:
        patterns = [lowercase_pattern(o, mode) for o in operands]
        main = {"attribute": attr, "op": "matches", "values": patterns}
        lowered = [o.lower() for o in operands]
        flags = _booleans(lambda text: any(test(text, o) for o in lowered))
    else:
        main = {"attribute": attr, "op": mode, "values": operands}
        flags = _booleans(lambda text: any(test(text, o) for o in operands))
    alternatives: Alternatives = [[main]]
    if flags:
        # A boolean attribute is the property "true"/"false" to Unleash.
        alternatives.append([{"attribute": attr, "op": "in", "values": flags}])
    return alternatives


def _float_key(x: float) -> int:
    bits: int = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def _from_key(key: int) -> float:
    bits = key if key >= 0 else (-key) | -0x8000000000000000
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


def _equal_range(target: float) -> tuple[float, float]:
    """The floats x with ``|x - target| < f64::EPSILON`` (computed in floats, as Rust does)."""

    def near(key: int) -> bool:
        return abs(_from_key(key) - target) < _EPSILON

    def edge(inside: int, outside: int) -> int:
        while abs(outside - inside) > 1:
            middle = (inside + outside) // 2
            if near(middle):
                inside = middle
            else:
                outside = middle
        return inside

    centre = _float_key(target)
    low = edge(centre, _float_key(target - 1.0))
    high = edge(centre, _float_key(target + 1.0))
    return _from_key(low), _from_key(high)


def _number(attr: str, op: str, raw: Any) -> Alternatives:
    text = check_operand(raw, f"{op} value")
    if not _NUMBER.fullmatch(text):
        raise UntranslatableError(
            f"{op} value {text!r}", "not a plain number; Unleash would read it as another type"
        )
    target = float(text)
    if not math.isfinite(target) or abs(target) >= _EXACT_LIMIT:
        raise UntranslatableError(
            f"{op} value {text!r}",
            "beyond 2^53, Unleash's float reading of integer attributes differs from Fader's "
            "exact comparison",
        )
    if op == "NUM_EQ":
        low, high = _equal_range(target)
        return [
            [
                {"attribute": attr, "op": "gte", "values": [low]},
                {"attribute": attr, "op": "lte", "values": [high]},
            ]
        ]
    return [[{"attribute": attr, "op": _NUMBER_OPS[op], "values": [target]}]]


def _date(attr: str, op: str, raw: Any) -> Alternatives:
    text = check_operand(raw, f"{op} value")
    if not _DATE.fullmatch(text) or parse_instant(text) is None:
        raise UntranslatableError(
            f"{op} value {text!r}",
            "Unleash compiles dates of the form 2025-01-31T12:00:00[.000](Z|+hh:mm) only",
        )
    return [
        [
            {"attribute": attr, "op": "matches", "values": [DATE_CONTEXT]},
            {"attribute": attr, "op": _DATE_OPS[op], "values": [text]},
        ]
    ]


def _semver(attr: str, op: str, raw: Any) -> Alternatives:
    text = check_operand(raw, f"{op} value")
    if text.startswith("v"):
        return NEVER  # Unleash compiles a 'v'-prefixed operand to `false`, inverted or not
    if not _SEMVER.fullmatch(text):
        raise UntranslatableError(
            f"{op} value {text!r}", "not a strict SemVer version; Unleash cannot compile it"
        )
    return [
        [
            {"attribute": attr, "op": "matches", "values": [SEMVER_CONTEXT]},
            {"attribute": attr, "op": _SEMVER_OPS[op], "values": [text]},
        ]
    ]


def constraint(raw: Any, helpers: HelperSegments) -> Alternatives:
    """One Unleash constraint as alternatives of Fader clauses (true exactly when it is)."""
    if not isinstance(raw, Mapping):
        raise UntranslatableError("constraint", "a constraint must be an object")
    op = raw.get("operator")
    if op == "REGEX":
        raise UntranslatableError(
            "operator 'REGEX'",
            "Unleash matches Rust regular expressions, whose syntax and classes differ from "
            "RE2's (Fader's 'matches'); rewrite it with the string operators before importing",
        )
    if op not in OPERATORS:
        raise UntranslatableError(
            f"operator {op!r}",
            "not an operator Fader translates (supported: " + ", ".join(sorted(OPERATORS)) + ")",
        )
    attr = attribute(raw.get("contextName"))
    inverted = raw.get("inverted") is True
    if op in ("IN", "NOT_IN"):
        values = raw.get("values") or []
        if not isinstance(values, list):
            raise UntranslatableError(f"{op} values", "values must be a list of strings")
        texts = [check_operand(v, f"{op} value") for v in values]
        positive = membership(attr, texts)
        # NOT_IN is true for a missing field: it is the negation of IN.
        return helpers.negation(positive) if (op == "NOT_IN") != inverted else positive
    if op in _STRING_OPS:
        values = raw.get("values") or []
        if not isinstance(values, list):
            raise UntranslatableError(f"{op} values", "values must be a list of strings")
        texts = [check_operand(v, f"{op} value") for v in values]
        positive = _strings(attr, op, texts, raw.get("caseInsensitive") is True, helpers)
    elif op in _DATE_OPS:
        positive = _date(attr, op, raw.get("value"))
    elif op in _SEMVER_OPS:
        positive = _semver(attr, op, raw.get("value"))
        if positive == NEVER:
            return NEVER
    else:
        positive = _number(attr, op, raw.get("value"))
    return helpers.negation(positive) if inverted else positive


def all_constraints(raws: Any, helpers: HelperSegments, where: str) -> list[Alternatives]:
    """Each constraint of a list, every one folded to a single conjunction where possible."""
    if raws is None:
        return []
    if not isinstance(raws, list):
        raise UntranslatableError(where, "constraints must be a list")
    out: list[Alternatives] = []
    for index, raw in enumerate(raws):
        try:
            alternatives = constraint(raw, helpers)
        except UntranslatableError as exc:
            raise UntranslatableError(
                f"{where}, constraint {index + 1}: {exc.construct}", exc.detail
            ) from None
        conj = helpers.as_conjunction(alternatives)
        out.append(NEVER if conj is None else [conj])
    return out


__all__ = ["ALWAYS", "DATE_CONTEXT", "SEMVER_CONTEXT", "all_constraints", "attribute", "constraint"]
