"""Parsing clauses: attribute paths, operators and the values each operator accepts.

The table :data:`_VALUE_RULES` says, per operator, which clause values are valid. Checking them
here (and not at evaluation) is what lets the evaluator trust every value: a `semver_lt` clause
always holds versions, a `matches` clause always compiles. Wrong *context* values are a different
matter: they simply do not match (see ``docs/flag-format.md``, "Clause").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from fader_engine.instant import parse_instant
from fader_engine.model import Clause, Operator
from fader_engine.networks import parse_network
from fader_engine.parse_fields import (
    Problems,
    child,
    is_number,
    json_type,
    read_bool,
    read_object,
    suggestion,
)
from fader_engine.parse_limits import MAX_CLAUSE_VALUES, MAX_CLAUSES, check_count
from fader_engine.regex import RegexError, compile_pattern
from fader_engine.semver import parse_version

_CLAUSE_FIELDS = ("attribute", "op", "values", "negate")
_OPERATORS = tuple(str(op) for op in Operator)


def parse_attribute(value: Any, path: str, where: str, problems: Problems) -> tuple[str, ...]:
    """A dotted attribute path (``address.country``) as its segments; ``()`` if reported."""
    if not isinstance(value, str):
        problems.add(
            path,
            f"the attribute of {where} must be a string such as 'country' or "
            f"'address.country', not {json_type(value)}",
        )
        return ()
    parts = tuple(value.split("."))
    if not all(parts):
        problems.add(
            path,
            f"attribute {value!r} of {where} has an empty path segment; "
            "separate nested names with single dots, e.g. 'address.country'",
        )
        return ()
    return parts


_Check = Callable[[Any], bool]
"""Whether one clause value suits an operator (checks needing more context are in _check_values)."""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or is_number(value)


def _is_version(value: Any) -> bool:
    return parse_version(value) is not None


def _is_instant(value: Any) -> bool:
    return parse_instant(value) is not None


def _is_network(value: Any) -> bool:
    return isinstance(value, str) and parse_network(value) is not None


_STRINGS: tuple[_Check, str] = (lambda v: isinstance(v, str), "strings")
_NUMBERS: tuple[_Check, str] = (is_number, "numbers (not strings or booleans)")
_VERSIONS: tuple[_Check, str] = (
    _is_version,
    "valid semantic versions such as '1.4.0' or 'v2.0.0-beta.1'",
)
_INSTANTS: tuple[_Check, str] = (
    _is_instant,
    "RFC 3339 date-time strings such as '2025-01-31T09:00:00Z' or Unix-seconds numbers",
)
_VALUE_RULES: Mapping[Operator, tuple[_Check, str]] = {
    Operator.IN: (_is_scalar, "strings, numbers or booleans"),
    Operator.STARTS_WITH: _STRINGS,
    Operator.ENDS_WITH: _STRINGS,
    Operator.CONTAINS: _STRINGS,
    Operator.MATCHES: _STRINGS,
    Operator.LT: _NUMBERS,
    Operator.LTE: _NUMBERS,
    Operator.GT: _NUMBERS,
    Operator.GTE: _NUMBERS,
    Operator.SEMVER_EQ: _VERSIONS,
    Operator.SEMVER_LT: _VERSIONS,
    Operator.SEMVER_LTE: _VERSIONS,
    Operator.SEMVER_GT: _VERSIONS,
    Operator.SEMVER_GTE: _VERSIONS,
    Operator.BEFORE: _INSTANTS,
    Operator.AFTER: _INSTANTS,
    Operator.IN_SEGMENT: _STRINGS,
    Operator.IP_IN: (
        _is_network,
        "IP addresses or CIDR networks such as '10.0.0.0/8', '192.168.1.7' or '2001:db8::/32'",
    ),
}


def _check_values(
    op: Operator,
    values: list[Any],
    path: str,
    where: str,
    segment_keys: Collection[str],
    problems: Problems,
) -> None:
    if op is Operator.UNLEASH_ROLLOUT:
        _check_rollout(values, path, where, problems)
        return
    accepts, needs = _VALUE_RULES[op]
    for index, value in enumerate(values):
        at = child(path, index)
        if not accepts(value):
            problems.add(
                at,
                f"value {value!r} ({json_type(value)}) of {where} does not suit "
                f"operator '{op}', which needs {needs}",
            )
        elif op is Operator.MATCHES:
            try:
                compile_pattern(value)
            except RegexError as exc:
                problems.add(at, f"invalid regular expression {value!r} in {where}: {exc.reason}")
        elif op is Operator.IN_SEGMENT and value not in segment_keys:
            problems.add(
                at,
                f"{where} uses segment {value!r}, which is not defined in "
                f"'segments'{suggestion(value, segment_keys)}",
            )


def _check_rollout(values: list[Any], path: str, where: str, problems: Problems) -> None:
    """``unleash_rollout`` takes exactly ``[group, percentage]`` (docs/bucketing.md)."""
    if (
        len(values) != 2
        or not isinstance(values[0], str)
        or not values[0]
        or not is_number(values[1])
        or not 0 <= values[1] <= 100
    ):
        problems.add(
            path,
            f"operator 'unleash_rollout' of {where} takes exactly two values: the group id "
            "(a non-empty string, usually the flag name) and the percentage (0 to 100), "
            'e.g. ["new-checkout", 25]',
        )


def parse_clause(
    value: Any, path: str, where: str, segment_keys: Collection[str], problems: Problems
) -> Clause | None:
    """One clause, or ``None`` when it could not be understood (the problems are recorded)."""
    obj = read_object(value, path, where, problems, known=_CLAUSE_FIELDS, required=("op",))
    if obj is None:
        return None
    negate = read_bool(obj, "negate", False, path, where, problems)
    if "op" not in obj:
        return None
    raw_op = obj["op"]
    if raw_op not in _OPERATORS:
        hint = suggestion(str(raw_op), _OPERATORS) or f"; operators are {', '.join(_OPERATORS)}"
        problems.add(child(path, "op"), f"unknown operator {raw_op!r} in {where}{hint}")
        return None
    op = Operator(raw_op)

    attribute: tuple[str, ...] = ()
    if op is Operator.IN_SEGMENT:
        if "attribute" in obj:
            problems.add(
                child(path, "attribute"),
                f"operator 'in_segment' takes no attribute "
                f"(it tests the whole context); remove "
                f"'attribute' from {where}",
            )
    elif "attribute" not in obj:
        problems.add(
            child(path, "attribute"),
            f"{where} uses operator '{op}' and needs an 'attribute' to test",
        )
    else:
        attribute = parse_attribute(obj["attribute"], child(path, "attribute"), where, problems)

    raw_values = obj.get("values")
    values_path = child(path, "values")
    if op is Operator.EXISTS:
        if raw_values is not None and raw_values != []:
            problems.add(
                values_path, f"operator 'exists' takes no values; remove 'values' from {where}"
            )
        return Clause(attribute, op, (), negate)
    if raw_values is None:
        problems.add(
            values_path, f"{where} uses operator '{op}' and needs 'values', a non-empty array"
        )
        return None
    if not isinstance(raw_values, list):
        problems.add(
            values_path, f"'values' of {where} must be an array, not {json_type(raw_values)}"
        )
        return None
    if not raw_values:
        problems.add(
            values_path,
            f"'values' of {where} is empty, so it could never match; give at least one value",
        )
        return None
    if not check_count(raw_values, MAX_CLAUSE_VALUES, values_path, where, "values", problems):
        return None
    _check_values(op, raw_values, values_path, where, segment_keys, problems)
    return Clause(attribute, op, tuple(raw_values), negate)


def parse_clauses(
    obj: Mapping[str, Any],
    path: str,
    where: str,
    segment_keys: Collection[str],
    problems: Problems,
) -> tuple[Clause, ...]:
    """The required ``clauses`` array of a rule (flag or segment); ``[]`` matches everyone."""
    raw = obj.get("clauses")
    clauses_path = child(path, "clauses")
    if raw is None:
        return ()  # reported as a missing required field by the caller's read_object
    if not isinstance(raw, list):
        problems.add(clauses_path, f"'clauses' of {where} must be an array, not {json_type(raw)}")
        return ()
    if not check_count(raw, MAX_CLAUSES, clauses_path, where, "clauses", problems):
        return ()
    out: list[Clause] = []
    for index, item in enumerate(raw):
        clause = parse_clause(
            item, child(clauses_path, index), f"clause {index} of {where}", segment_keys, problems
        )
        if clause is not None:
            out.append(clause)
    return tuple(out)
