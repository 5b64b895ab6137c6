"""LaunchDarkly clauses as Fader clauses, exactly, as formulas of alternatives.

A LaunchDarkly clause does not always become one Fader clause: a ``semVerLessThan`` must also
refuse ``v1.2.3`` (not a version to LaunchDarkly), a ``before`` compares milliseconds for a
number and seconds for a date string, a clause on ``kind`` must match a context that has no
``kind`` (LaunchDarkly's "user"). So each clause becomes a :data:`Formula`: alternatives (OR)
of Fader clause lists (AND). A rule is the conjunction of its clauses' formulas; a Fader rule
is written per alternative (:func:`conjoin`), which is exact because the alternatives of one
LaunchDarkly rule serve the same thing and sit next to each other.

What every formula keeps: it is false when the Fader context lacks the attribute, negated or
not, which is LaunchDarkly's rule too (an absent attribute fails the clause before ``negate``
is applied), except where LaunchDarkly itself supplies a value (:class:`Attribute.missing`).

The context convention (docs/migration-launchdarkly.md): a Fader context is one LaunchDarkly
context of kind ``ctx["kind"]`` (default ``user``) whose key is the ``targetingKey``; every
other entry is an attribute, ``name`` and ``anonymous`` being LaunchDarkly's built-ins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fader_server.migration.launchdarkly.values import (
    UntranslatableValueError,
    is_number,
    ld_matches,
    ld_time_ms,
    ld_version,
    python_pattern,
    re2_pattern,
    seconds_after,
    seconds_before,
)
from fader_server.migration.model import JSON

Formula = list[list[JSON]]
"""Alternatives (OR) of Fader clause lists (AND); ``[]`` never matches, ``[[]]`` always does."""
MAX_ALTERNATIVES = 64
"""Fader rules one LaunchDarkly rule may become; beyond this the rule is reported."""
MAX_VALUES = 10_000
"""Values of one Fader clause (the engine's limit): longer lists become several clauses."""
DEFAULT_KIND = "user"
_INVALID_ESCAPE = re.compile("(~[^01]|~$)")


class UntranslatableError(Exception):
    """A construct with no exact Fader equivalent: `construct` says where, `detail` why."""

    def __init__(self, construct: str, detail: str) -> None:
        super().__init__(f"{construct}: {detail}")
        self.construct, self.detail = construct, detail


def never() -> Formula:
    return []


def always() -> Formula:
    return [[]]


def conjoin(formulas: Iterable[Formula], where: str) -> Formula:
    """The AND of formulas, as alternatives (the cross product of theirs)."""
    result: Formula = always()
    for formula in formulas:
        result = [left + right for left in result for right in formula]
        if len(result) > MAX_ALTERNATIVES:
            raise UntranslatableError(
                where,
                f"the rule needs more than {MAX_ALTERNATIVES} Fader rules to be exact; "
                "split it into simpler rules",
            )
    return result


def clause(attribute: str, op: str, values: list[Any] | None = None, negate: bool = False) -> JSON:
    out: JSON = {"attribute": attribute, "op": op}
    if values is not None:
        out["values"] = values
    if negate:
        out["negate"] = True
    return out


@dataclass(frozen=True, slots=True)
class Attribute:
    """Where a LaunchDarkly attribute reference reads a Fader context.

    `path` is the Fader attribute (``None``: LaunchDarkly never finds a value there under the
    context convention); `missing` is the value LaunchDarkly uses when the Fader context lacks
    the attribute (``kind`` is "user", ``anonymous`` false; ``None`` for every other one).
    """

    path: str | None
    missing: Any = None
    is_kind: bool = False


def attribute(raw: Any, context_kind: Any, where: str) -> Attribute:
    """Resolve an attribute reference as the SDK does (``ldclient.impl.model.attribute_ref``).

    Without a ``contextKind`` (old-style data) the whole string names one top-level attribute,
    slashes included; with one, a leading ``/`` starts a JSON-pointer-like path (``~1`` is
    ``/``, ``~0`` is ``~``).
    """
    if not isinstance(raw, str) or raw in ("", "/"):
        raise UntranslatableError(where, f"attribute reference {raw!r} is empty or not text")
    if context_kind in (None, "") or not raw.startswith("/"):
        parts = [raw]
    else:
        parts = raw[1:].split("/")
        if any(part == "" or _INVALID_ESCAPE.search(part) for part in parts):
            raise UntranslatableError(
                where, f"attribute reference {raw!r} is invalid (LaunchDarkly fails the flag)"
            )
        parts = [part.replace("~1", "/").replace("~0", "~") for part in parts]
    head = parts[0]
    if len(parts) == 1 and head == "kind":
        return Attribute("kind", missing=DEFAULT_KIND, is_kind=True)
    if head in ("_meta", "targetingKey") or (
        len(parts) > 1 and head in ("key", "kind", "name", "anonymous")
    ):
        # `_meta` cannot be set on a context; `targetingKey` is the context key, not an
        # attribute; built-ins are scalars, so no path reaches into them.
        return Attribute(None)
    if head == "key":
        return Attribute("targetingKey")
    if head == "anonymous":
        return Attribute("anonymous", missing=False)
    if any("." in part for part in parts):
        raise UntranslatableError(
            where,
            f"attribute {raw!r} has a name containing '.', which Fader's attribute paths "
            "use to reach into objects",
        )
    return Attribute(".".join(parts))


# -- operators --------------------------------------------------------------------------------

_STRING_OPS = {"startsWith": "starts_with", "endsWith": "ends_with", "contains": "contains"}
_NUMBER_OPS = {
    "lessThan": "lt",
    "lessThanOrEqual": "lte",
    "greaterThan": "gt",
    "greaterThanOrEqual": "gte",
}
_SEMVER_OPS = {
    "semVerEqual": "semver_eq",
    "semVerLessThan": "semver_lt",
    "semVerGreaterThan": "semver_gt",
}
OPERATORS = (
    "in", "matches", *_STRING_OPS, *_NUMBER_OPS, "before", "after", *_SEMVER_OPS,
    "segmentMatch",
)  # fmt: skip
LIST_OPERATORS = frozenset({"in"})
"""Operators Fader applies to each element of a list attribute, as LaunchDarkly applies all."""


def simple(path: str, op: str, values: list[Any], negate: bool) -> Formula:
    """One Fader clause (several when the values exceed the engine's limit).

    No usable value: LaunchDarkly's clause never matches, so its negation matches any present
    attribute, which is Fader's ``exists``.
    """
    if not values:
        return [[clause(path, "exists")]] if negate else never()
    chunks = [values[i : i + MAX_VALUES] for i in range(0, len(values), MAX_VALUES)]
    clauses = [clause(path, op, chunk, negate) for chunk in chunks]
    # not (a or b) is (not a) and (not b): one alternative; a or b: one each.
    return [clauses] if negate else [[c] for c in clauses]


def _not_number(path: str) -> list[JSON]:
    """Present and not a number: neither below nor at-or-above zero."""
    return [clause(path, "lt", [0], True), clause(path, "gte", [0], True)]


def _instants(path: str, op: str, values: list[Any], negate: bool) -> Formula:
    """``before``/``after``: numbers are milliseconds to LaunchDarkly, seconds to Fader.

    A number is compared as a number (``lt``/``gt`` with the milliseconds); a date string with
    Fader's ``before``/``after`` and the exact seconds bound (values.seconds_before), guarded to
    non-numbers, because Fader's ``before`` would read a number as seconds.
    """
    limits = [t for t in (ld_time_ms(v) for v in values) if t is not None]
    if not limits:
        return simple(path, "in", [], negate)
    if op == "before":
        limit = max(limits)
        number_match, number_miss = "lt", "gte"
        seconds = seconds_before(limit)
    else:
        limit = min(limits)
        number_match, number_miss = "gt", "lte"
        seconds = seconds_after(limit)
    if negate:
        return [
            [clause(path, number_miss, [limit])],
            [clause(path, op, [seconds], True), *_not_number(path)],
        ]
    return [
        [clause(path, number_match, [limit])],
        [clause(path, op, [seconds]), *_not_number(path)],
    ]


def _versions(path: str, op: str, values: list[Any], negate: bool) -> Formula:
    """Versions as LaunchDarkly reads them; a ``v`` prefix makes a string no version to it."""
    versions = [v for v in (ld_version(value) for value in values) if v is not None]
    formula = simple(path, _SEMVER_OPS[op], versions, negate)
    if not versions:
        return formula
    if negate:
        return [*formula, [clause(path, "starts_with", ["v"])]]
    return conjoin([formula, [[clause(path, "starts_with", ["v"], True)]]], "semver")


def _patterns(values: list[Any], where: str) -> list[str]:
    out: list[str] = []
    for value in values:
        if python_pattern(value) is None:
            continue  # the SDK cannot compile it: it matches nothing
        try:
            out.append(re2_pattern(value))
        except UntranslatableValueError as exc:
            raise UntranslatableError(where, f"regular expression {value!r}: {exc}") from None
    return out


def value_formula(path: str, op: str, values: list[Any], negate: bool, where: str) -> Formula:
    """The formula of an operator over a present Fader attribute (false when it is absent)."""
    if op == "in":
        scalars = []
        for value in values:
            if isinstance(value, dict | list):
                raise UntranslatableError(
                    where, "an 'in' value that is an array or object has no Fader equivalent"
                )
            if value is not None:  # no context value is ever null
                scalars.append(value)
        return simple(path, "in", scalars, negate)
    if op in _STRING_OPS:
        return simple(path, _STRING_OPS[op], [v for v in values if isinstance(v, str)], negate)
    if op == "matches":
        return simple(path, "matches", _patterns(values, where), negate)
    if op in _NUMBER_OPS:
        return simple(path, _NUMBER_OPS[op], [v for v in values if is_number(v)], negate)
    if op in ("before", "after"):
        return _instants(path, op, values, negate)
    if op in _SEMVER_OPS:
        return _versions(path, op, values, negate)
    raise UntranslatableError(
        where,
        f"operator {op!r} is not one this translator knows (LaunchDarkly's are "
        f"{', '.join(OPERATORS)})",
    )


@dataclass(frozen=True, slots=True)
class ClauseTranslation:
    """A clause's formula and the context kind it needs (``None``: any kind)."""

    formula: Formula
    kind: str | None
    attribute: str | None = None
    op: str = ""


SegmentLookup = Callable[[str, str], str | None]
"""LaunchDarkly segment key and location to the Fader segment key (``None``: no such segment,
which matches nobody); raises :class:`UntranslatableError` for a segment not translated."""


def translate_clause(raw: Any, where: str, segments: SegmentLookup) -> ClauseTranslation:
    """One LaunchDarkly clause (see the module docstring)."""
    if not isinstance(raw, dict):
        raise UntranslatableError(where, "a clause must be an object")
    op, values, negate = raw.get("op"), raw.get("values"), raw.get("negate", False)
    kind = raw.get("contextKind")
    if not isinstance(op, str) or not isinstance(values, list) or not isinstance(negate, bool):
        raise UntranslatableError(
            where, "a clause needs 'op' (text), 'values' (a list) and a boolean 'negate'"
        )
    if kind is not None and not isinstance(kind, str):
        raise UntranslatableError(where, "'contextKind' must be text")
    if not isinstance(raw.get("attribute"), str):
        # The SDK refuses to load data with such a clause, even on segmentMatch.
        raise UntranslatableError(where, "a clause needs an 'attribute' (text)")
    if op == "segmentMatch":
        keys: list[str] = []
        for value in values:
            if isinstance(value, str) and (key := segments(value, where)) is not None:
                keys.append(key)
        if not keys:
            return ClauseTranslation(always() if negate else never(), None, op=op)
        return ClauseTranslation(
            [[{"op": "in_segment", "values": keys, **({"negate": True} if negate else {})}]],
            None,
            op=op,
        )
    if op not in OPERATORS:
        value_formula("", op, values, negate, where)  # raises: unknown operator
    attr = attribute(raw.get("attribute"), kind, where)
    if attr.path is None:
        return ClauseTranslation(never(), kind or DEFAULT_KIND, op=op)
    formula = value_formula(attr.path, op, values, negate, where)
    if attr.missing is not None and ld_matches(op, values, attr.missing) != negate:
        # LaunchDarkly reads its own value for the absent attribute, and it passes.
        formula = [*formula, [clause(attr.path, "exists", negate=True)]]
    # A clause on `kind` tests the context's kind itself, whatever the clause's contextKind.
    needed = None if attr.is_kind else (kind or DEFAULT_KIND)
    return ClauseTranslation(formula, needed, attribute=attr.path, op=op)
