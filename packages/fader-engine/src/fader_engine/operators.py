"""Clause operators: one table from operator to a predicate factory.

A factory receives a clause's validated ``values`` once, at compile time, and returns a
predicate over one attribute value. Predicates never raise and never coerce across types: a
number never equals a string, a boolean is not a number, and a value of the wrong type simply
does not match (PRODUCT.md §2: a bad attribute is not an evaluation error). Missing attributes
and negation are handled by :mod:`fader_engine.compile`, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fader_engine.instant import parse_instant
from fader_engine.model import Operator
from fader_engine.regex import compile_pattern
from fader_engine.semver import parse_version

Predicate = Callable[[Any], bool]
PredicateFactory = Callable[[Sequence[Any]], Predicate]


def _is_number(value: Any) -> bool:
    cls = value.__class__
    return cls is int or cls is float


def _membership(values: Sequence[Any]) -> Predicate:
    """Equality with any value; a list attribute matches when any element does.

    Values are bucketed by JSON type so that Python's ``True == 1`` never leaks into matching.
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


def _string_op(test: Callable[[str, str], bool]) -> PredicateFactory:
    def factory(values: Sequence[Any]) -> Predicate:
        operands = tuple(values)

        def predicate(value: Any) -> bool:
            if value.__class__ is not str:
                return False
            return any(test(value, operand) for operand in operands)

        return predicate

    return factory


def _starts_with(values: Sequence[Any]) -> Predicate:
    prefixes = tuple(values)  # str.startswith takes a tuple: one C call for all values
    return lambda value: value.__class__ is str and value.startswith(prefixes)


def _ends_with(values: Sequence[Any]) -> Predicate:
    suffixes = tuple(values)
    return lambda value: value.__class__ is str and value.endswith(suffixes)


def _matches(values: Sequence[Any]) -> Predicate:
    patterns = tuple(compile_pattern(v) for v in values)

    def predicate(value: Any) -> bool:
        if value.__class__ is not str:
            return False
        return any(p.search(value) is not None for p in patterns)

    return predicate


def _numeric(test: Callable[[float, float], bool]) -> PredicateFactory:
    def factory(values: Sequence[Any]) -> Predicate:
        operands = tuple(values)

        def predicate(value: Any) -> bool:
            if not _is_number(value):
                return False
            return any(test(value, operand) for operand in operands)

        return predicate

    return factory


def _semver(test: Callable[[Any, Any], bool]) -> PredicateFactory:
    def factory(values: Sequence[Any]) -> Predicate:
        operands = tuple(parse_version(v) for v in values)

        def predicate(value: Any) -> bool:
            if value.__class__ is not str:
                return False
            version = parse_version(value)
            if version is None:
                return False
            return any(operand is not None and test(version, operand) for operand in operands)

        return predicate

    return factory


def _instant(test: Callable[[float, float], bool]) -> PredicateFactory:
    def factory(values: Sequence[Any]) -> Predicate:
        operands = tuple(t for t in (parse_instant(v) for v in values) if t is not None)

        def predicate(value: Any) -> bool:
            moment = parse_instant(value)
            if moment is None:
                return False
            return any(test(moment, operand) for operand in operands)

        return predicate

    return factory


def _exists(values: Sequence[Any]) -> Predicate:
    return lambda value: True


OPERATORS: dict[Operator, PredicateFactory] = {
    Operator.IN: _membership,
    Operator.STARTS_WITH: _starts_with,
    Operator.ENDS_WITH: _ends_with,
    Operator.CONTAINS: _string_op(lambda value, operand: operand in value),
    Operator.MATCHES: _matches,
    Operator.LT: _numeric(lambda a, b: a < b),
    Operator.LTE: _numeric(lambda a, b: a <= b),
    Operator.GT: _numeric(lambda a, b: a > b),
    Operator.GTE: _numeric(lambda a, b: a >= b),
    Operator.SEMVER_EQ: _semver(lambda a, b: a == b),
    Operator.SEMVER_LT: _semver(lambda a, b: a < b),
    Operator.SEMVER_LTE: _semver(lambda a, b: a <= b),
    Operator.SEMVER_GT: _semver(lambda a, b: a > b),
    Operator.SEMVER_GTE: _semver(lambda a, b: a >= b),
    Operator.BEFORE: _instant(lambda a, b: a < b),
    Operator.AFTER: _instant(lambda a, b: a > b),
    Operator.EXISTS: _exists,
}
"""Every attribute operator. ``in_segment`` is absent: it needs segments, so compile owns it."""
