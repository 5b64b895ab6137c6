"""What each clause operator means, written once: one table from operator to its semantics.

An entry is a Python **expression template** over one present attribute value, plus a function
that prepares the clause's validated ``values`` once, at compile time, into the names the
template uses. :mod:`fader_engine.codegen` is the only reader: it substitutes the template into
the one generated function of a flag (or of a segment), so the hot operators cost no function
call at all, and the rest cost one call to a helper defined here. There is no second,
interpreted copy of any operator to keep in step (why generated code:
docs/adr/0001-engine-compiles-to-generated-functions.md).

Template placeholders:

- ``{load}`` is where the attribute is read; it must appear exactly once, at the position
  Python evaluates first (a conditional expression evaluates its condition first);
- ``{value}`` is every later use of the same value;
- every other ``{name}`` is a key of the mapping `operands` returns; codegen binds each one
  under a generated identifier, so no clause value ever becomes source text.

Every template is ``False`` for ``None``, so a missing attribute never matches without a test
of its own. Predicates never raise and never coerce across types: a number never equals a
string, a boolean is not a number, and a value of the wrong type simply does not match
(docs/flag-format.md, "Clause": a bad attribute is not an evaluation error). Negation, the
missing-attribute rule under negation, ``exists`` and ``in_segment`` are about the clause, not
about a value: :func:`fader_engine.codegen.clause_expression` defines them, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fader_engine.instant import parse_instant
from fader_engine.model import Operator
from fader_engine.networks import parse_address, parse_network
from fader_engine.regex import compile_pattern
from fader_engine.semver import VersionKey, parse_version
from fader_engine.vendor_bucketing import bucketable, unleash_in_rollout

Predicate = Callable[[Any], bool]
Operands = Callable[[Sequence[Any]], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class OperatorSemantics:
    """One operator: a template over the attribute value and how to prepare its operands."""

    template: str
    operands: Operands


# -- membership -------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    cls = value.__class__
    return cls is int or cls is float


def _membership(values: Sequence[Any]) -> Predicate:
    """Equality with any value; a list attribute matches when any element does.

    Values are bucketed by JSON type so that Python's ``True == 1`` never leaks into matching.
    The template tests a string attribute inline; this predicate decides everything else.
    """
    strings = frozenset(v for v in values if v.__class__ is str)
    numbers = frozenset(v for v in values if _is_number(v))
    booleans = frozenset(v for v in values if v.__class__ is bool)

    def scalar(value: Any) -> bool:
        cls = value.__class__
        if cls is str:
            return value in strings
        if cls is int or cls is float:
            return value in numbers
        if cls is bool:
            return value in booleans
        return False

    def predicate(value: Any) -> bool:
        if value.__class__ is list or value.__class__ is tuple:
            return any(scalar(item) for item in value)
        return scalar(value)

    return predicate


def _in_operands(values: Sequence[Any]) -> Mapping[str, Any]:
    return {
        "strings": frozenset(v for v in values if v.__class__ is str),
        "other": _membership(values),
    }


# -- strings ----------------------------------------------------------------------------------


def _affixes(values: Sequence[Any]) -> Mapping[str, Any]:
    # str.startswith / endswith take a tuple: one C call tests every value.
    return {"affixes": tuple(values)}


def _contains(values: Sequence[Any]) -> Mapping[str, Any]:
    needles = tuple(values)
    return {"contains": lambda value: any(needle in value for needle in needles)}


def _matches(values: Sequence[Any]) -> Mapping[str, Any]:
    patterns = tuple(compile_pattern(v) for v in values)
    # RE2, not `re`: linear time in the input, so no pattern can hang evaluation.
    return {"search": lambda value: any(p.search(value) is not None for p in patterns)}


# -- numbers ----------------------------------------------------------------------------------


def _upper(values: Sequence[Any]) -> Mapping[str, Any]:
    """`x < any of values` is `x < max(values)`: numbers are totally ordered (all finite)."""
    return {"bound": max(values)}


def _lower(values: Sequence[Any]) -> Mapping[str, Any]:
    """`x > any of values` is `x > min(values)`."""
    return {"bound": min(values)}


# -- semantic versions and instants -----------------------------------------------------------


def _semver(test: Callable[[VersionKey, VersionKey], bool]) -> Operands:
    def operands(values: Sequence[Any]) -> Mapping[str, Any]:
        versions = tuple(v for v in (parse_version(value) for value in values) if v is not None)

        def predicate(value: Any) -> bool:
            version = parse_version(value)  # None when not a version
            return version is not None and any(test(version, operand) for operand in versions)

        return {"version": predicate}

    return operands


def _instant(test: Callable[[float, float], bool]) -> Operands:
    def operands(values: Sequence[Any]) -> Mapping[str, Any]:
        moments = tuple(t for t in (parse_instant(v) for v in values) if t is not None)

        def predicate(value: Any) -> bool:
            moment = parse_instant(value)  # RFC 3339 strings and Unix seconds; else None
            return moment is not None and any(test(moment, operand) for operand in moments)

        return {"instant": predicate}

    return operands


# -- networks and vendor rollouts ------------------------------------------------------------


def _ip_in(values: Sequence[Any]) -> Mapping[str, Any]:
    networks = tuple(n for n in (parse_network(v) for v in values) if n is not None)

    def predicate(value: Any) -> bool:
        address = parse_address(value)  # None for anything but an address string
        return address is not None and any(address in network for network in networks)

    return {"ip_in": predicate}


def _unleash_rollout(values: Sequence[Any]) -> Mapping[str, Any]:
    group, percentage = str(values[0]), values[1]

    def predicate(value: Any) -> bool:
        text = bucketable(value)  # strings and integers; None (missing) never matches
        return text is not None and unleash_in_rollout(group, text, percentage)

    return {"rollout": predicate}


_IS_STRING = "{load}.__class__ is str"
_IS_NUMBER = "({load}.__class__ is int or {value}.__class__ is float)"
"""Exact class tests: a bool is not a number, a str subclass (an enum member) is not a string."""


def _op(template: str, operands: Operands) -> OperatorSemantics:
    """An entry whose template may spell the type guards above as IS_STRING and IS_NUMBER."""
    return OperatorSemantics(
        template.replace("IS_STRING", _IS_STRING).replace("IS_NUMBER", _IS_NUMBER), operands
    )


OPERATORS: Mapping[Operator, OperatorSemantics] = {
    Operator.IN: _op("({value} in {strings} if IS_STRING else {other}({value}))", _in_operands),
    Operator.STARTS_WITH: _op("(IS_STRING and {value}.startswith({affixes}))", _affixes),
    Operator.ENDS_WITH: _op("(IS_STRING and {value}.endswith({affixes}))", _affixes),
    Operator.CONTAINS: _op("(IS_STRING and {contains}({value}))", _contains),
    Operator.MATCHES: _op("(IS_STRING and {search}({value}))", _matches),
    Operator.LT: _op("(IS_NUMBER and {value} < {bound})", _upper),
    Operator.LTE: _op("(IS_NUMBER and {value} <= {bound})", _upper),
    Operator.GT: _op("(IS_NUMBER and {value} > {bound})", _lower),
    Operator.GTE: _op("(IS_NUMBER and {value} >= {bound})", _lower),
    Operator.SEMVER_EQ: _op("(IS_STRING and {version}({value}))", _semver(lambda a, b: a == b)),
    Operator.SEMVER_LT: _op("(IS_STRING and {version}({value}))", _semver(lambda a, b: a < b)),
    Operator.SEMVER_LTE: _op("(IS_STRING and {version}({value}))", _semver(lambda a, b: a <= b)),
    Operator.SEMVER_GT: _op("(IS_STRING and {version}({value}))", _semver(lambda a, b: a > b)),
    Operator.SEMVER_GTE: _op("(IS_STRING and {version}({value}))", _semver(lambda a, b: a >= b)),
    Operator.BEFORE: _op("{instant}({load})", _instant(lambda a, b: a < b)),
    Operator.AFTER: _op("{instant}({load})", _instant(lambda a, b: a > b)),
    Operator.IP_IN: _op("{ip_in}({load})", _ip_in),
    Operator.UNLEASH_ROLLOUT: _op("{rollout}({load})", _unleash_rollout),
}
"""Every operator on an attribute value; ``exists`` and ``in_segment`` are clause-level."""
