"""JsonLogic compiled into Python closures, once, at load time.

A targeting rule is a JSON tree; interpreting it on every evaluation would re-dispatch on
operator names and re-split ``var`` paths each time. Instead :class:`RuleCompiler` walks the tree
once and returns nested closures ``(data) -> value``; evaluation does no parsing and no lookups by
operator name. Unknown operators, malformed arguments and missing ``$ref`` targets are found at
compile time and raised as :class:`RuleError` with a JSON-pointer path.

The semantics are JsonLogic's as flagd applies them (https://jsonlogic.com/operations.html,
https://flagd.dev/reference/flag-definitions/#targeting-rules): operators here never raise on odd
data, they return ``null`` or ``false`` as JavaScript would. This module knows nothing of flags
or variants; flagd's custom operators are plugged in by :mod:`fader_engine.flagd.operators`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import FaderEngineError, Problem
from fader_engine.flagd import arithmetic
from fader_engine.flagd.coercion import (
    is_number,
    less_than,
    loose_equal,
    strict_equal,
    to_number,
    to_string,
    truthy,
)

Expr = Callable[[Any], Any]
"""A compiled rule: the evaluation data (context + ``$flagd``) in, a JSON value out."""
Builder = Callable[["RuleCompiler", list[Any], str], Expr]
"""Compiles one operator's raw arguments (always a list) found at a JSON-pointer path."""


class RuleError(FaderEngineError):
    """A rule cannot be compiled (unknown operator, malformed arguments, dangling ``$ref``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def constant(value: Any) -> Expr:
    return lambda _data: value


class RuleCompiler:
    """Compiles JsonLogic trees with a fixed operator table and shared ``$evaluators``.

    `warnings` collects problems that the flagd schema rejects but that still have a defined
    run-time meaning (a negative weight is clamped, ``sem_ver`` with a bad operator yields
    ``null``): strict loading turns them into errors, flagd-compatible loading ignores them.
    """

    def __init__(
        self,
        operators: Mapping[str, Builder],
        evaluators: Mapping[str, Any],
        bucketing: BucketingAlgorithm,
    ) -> None:
        self.operators = operators
        self.bucketing = bucketing
        self.warnings: list[Problem] = []
        self._evaluators = evaluators
        self._compiled_refs: dict[str, Expr] = {}
        self._resolving: list[str] = []

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message))

    def compile(self, node: Any, path: str) -> Expr:
        if isinstance(node, list):
            items = [self.compile(item, f"{path}/{i}") for i, item in enumerate(node)]
            return lambda data: [item(data) for item in items]
        if not isinstance(node, dict) or not node:
            return constant(node)  # an empty object is data in JsonLogic, not a rule
        if len(node) != 1:
            raise RuleError(
                path,
                "a rule object must have exactly one key, the operator name "
                f"(found {len(node)}: {sorted(node)!r})",
            )
        ((op, raw_args),) = node.items()
        if op == "$ref":
            return self._ref(raw_args, f"{path}/$ref")
        builder = self.operators.get(op)
        if builder is None:
            raise RuleError(
                f"{path}/{op}",
                f"unknown operator {op!r}; flagd supports JsonLogic's operators plus "
                "fractional, sem_ver, starts_with and ends_with",
            )
        args = raw_args if isinstance(raw_args, list) else [raw_args]
        return builder(self, args, f"{path}/{op}")

    def compile_args(self, args: list[Any], path: str) -> list[Expr]:
        return [self.compile(arg, f"{path}/{i}") for i, arg in enumerate(args)]

    def _ref(self, name: Any, path: str) -> Expr:
        """Inline a shared rule from ``$evaluators`` (compiled once, reused by every flag)."""
        if not isinstance(name, str) or name not in self._evaluators:
            known = ", ".join(sorted(self._evaluators)) or "none defined"
            raise RuleError(path, f"$ref {name!r} names no entry of $evaluators ({known})")
        cached = self._compiled_refs.get(name)
        if cached is not None:
            return cached
        if name in self._resolving:
            cycle = " -> ".join([*self._resolving, name])
            raise RuleError(path, f"$evaluators reference themselves in a cycle: {cycle}")
        self._resolving.append(name)
        try:
            expr = self.compile(self._evaluators[name], f"/$evaluators/{name}")
        finally:
            self._resolving.pop()
        self._compiled_refs[name] = expr
        return expr


# --- data access ------------------------------------------------------------------------------


def _lookup(data: Any, parts: tuple[str, ...], default: Any) -> Any:
    current = data
    for part in parts:
        if isinstance(current, dict):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return default if current is None else current


def _split(path: Any) -> tuple[str, ...]:
    if path is None:
        return ()
    text = to_string(path)
    return () if text == "" else tuple(text.split("."))


def _var(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    """``var``: dotted path into the data; ``""`` or no argument means the whole data."""
    default = c.compile(args[1], f"{path}/1") if len(args) > 1 else constant(None)
    raw = args[0] if args else None
    if isinstance(raw, dict | list):
        dynamic = c.compile(raw, f"{path}/0")
        return lambda data: _lookup(data, _split(dynamic(data)), default(data))
    if isinstance(raw, str) and raw.startswith("$flagd.") and raw not in _FLAGD_PROPERTIES:
        c.warn(f"{path}/0", f"{raw!r} is not a flagd property; use one of {_FLAGD_PROPERTIES}")
    parts = _split(raw)
    if len(parts) == 1:
        (key,) = parts

        def var_key(data: Any) -> Any:
            value = data.get(key) if isinstance(data, dict) else _lookup(data, parts, None)
            return default(data) if value is None else value

        return var_key
    return lambda data: _lookup(data, parts, default(data))


_FLAGD_PROPERTIES = ("$flagd.flagKey", "$flagd.timestamp")


def _missing_keys(data: Any, keys: list[Any]) -> list[Any]:
    if keys and isinstance(keys[0], list):
        keys = keys[0]
    return [key for key in keys if _lookup(data, _split(key), None) in (None, "")]


def _missing(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    items = c.compile_args(args, path)
    return lambda data: _missing_keys(data, [item(data) for item in items])


def _missing_some(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    if len(args) != 2:
        raise RuleError(path, "missing_some takes [minimum, [keys...]]")
    need, keys = c.compile_args(args, path)

    def missing_some(data: Any) -> list[Any]:
        wanted = keys(data)
        wanted = wanted if isinstance(wanted, list) else [wanted]
        missing = _missing_keys(data, wanted)
        return [] if len(wanted) - len(missing) >= to_number(need(data)) else missing

    return missing_some


# --- logic ------------------------------------------------------------------------------------


def _if(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    """``if`` with chained else-ifs: ``[c1, v1, c2, v2, ..., else]``."""
    items = c.compile_args(args, path)
    pairs = [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
    otherwise = items[-1] if len(items) % 2 == 1 else constant(None)

    def if_(data: Any) -> Any:
        for condition, then in pairs:
            if truthy(condition(data)):
                return then(data)
        return otherwise(data)

    return if_


def _or(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    items = c.compile_args(args, path)

    def or_(data: Any) -> Any:
        value = None
        for item in items:
            value = item(data)
            if truthy(value):
                return value
        return value

    return or_


def _and(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    items = c.compile_args(args, path)

    def and_(data: Any) -> Any:
        value = None
        for item in items:
            value = item(data)
            if not truthy(value):
                return value
        return value

    return and_


def _unary(fn: Callable[[Any], Any]) -> Builder:
    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        item = c.compile(args[0], f"{path}/0") if args else constant(None)
        return lambda data: fn(item(data))

    return build


def _binary(fn: Callable[[Any, Any], Any]) -> Builder:
    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        if len(args) < 2:
            raise RuleError(path, f"needs two arguments, got {len(args)}")
        left, right = c.compile_args(args[:2], path)
        return lambda data: fn(left(data), right(data))

    return build


def _compare(or_equal: bool) -> Builder:
    """``<`` / ``<=``; with three arguments, "between": ``a < b < c``."""

    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        if len(args) not in (2, 3):
            raise RuleError(path, f"takes two or three arguments, got {len(args)}")
        items = c.compile_args(args, path)

        def compare(data: Any) -> bool:
            values = [item(data) for item in items]
            return all(
                less_than(values[i], values[i + 1], or_equal=or_equal)
                for i in range(len(values) - 1)
            )

        return compare

    return build


# --- arithmetic and strings -------------------------------------------------------------------


def _variadic(fn: Callable[[list[Any]], Any]) -> Builder:
    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        items = c.compile_args(args, path)
        return lambda data: fn([item(data) for item in items])

    return build


# --- array operations: the second argument runs with each element as its data -----------------


def _over_array(kind: str) -> Builder:
    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        if len(args) < 2:
            raise RuleError(path, f"{kind} takes [array, logic]")
        source = c.compile(args[0], f"{path}/0")
        logic = c.compile(args[1], f"{path}/1")

        def run(data: Any) -> Any:
            items = source(data)
            items = items if isinstance(items, list) else []
            if kind == "map":
                return [logic(item) for item in items]
            if kind == "filter":
                return [item for item in items if truthy(logic(item))]
            if kind == "all":
                return bool(items) and all(truthy(logic(item)) for item in items)
            if kind == "some":
                return any(truthy(logic(item)) for item in items)
            return not any(truthy(logic(item)) for item in items)  # none

        return run

    return build


def _reduce(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    if len(args) < 2:
        raise RuleError(path, "reduce takes [array, logic, initial]")
    source = c.compile(args[0], f"{path}/0")
    logic = c.compile(args[1], f"{path}/1")
    initial = c.compile(args[2], f"{path}/2") if len(args) > 2 else constant(None)

    def reduce_(data: Any) -> Any:
        items = source(data)
        accumulator = initial(data)
        for item in items if isinstance(items, list) else []:
            accumulator = logic({"current": item, "accumulator": accumulator})
        return accumulator

    return reduce_


STANDARD_OPERATORS: Mapping[str, Builder] = {
    "var": _var,
    "missing": _missing,
    "missing_some": _missing_some,
    "if": _if,
    "?:": _if,
    "or": _or,
    "and": _and,
    "!": _unary(lambda v: not truthy(v)),
    "!!": _unary(truthy),
    "==": _binary(loose_equal),
    "!=": _binary(lambda a, b: not loose_equal(a, b)),
    "===": _binary(strict_equal),
    "!==": _binary(lambda a, b: not strict_equal(a, b)),
    ">": _binary(lambda a, b: less_than(b, a)),
    ">=": _binary(lambda a, b: less_than(b, a, or_equal=True)),
    "<": _compare(or_equal=False),
    "<=": _compare(or_equal=True),
    "+": _variadic(arithmetic.add),
    "*": _variadic(arithmetic.multiply),
    "-": _variadic(arithmetic.subtract),
    "/": _variadic(arithmetic.divide),
    "%": _variadic(arithmetic.modulo),
    "min": _variadic(arithmetic.extreme(min)),
    "max": _variadic(arithmetic.extreme(max)),
    "cat": _variadic(arithmetic.cat),
    "substr": _variadic(arithmetic.substr),
    "in": _binary(arithmetic.contains),
    "merge": _variadic(arithmetic.merge),
    "map": _over_array("map"),
    "filter": _over_array("filter"),
    "all": _over_array("all"),
    "some": _over_array("some"),
    "none": _over_array("none"),
    "reduce": _reduce,
}
"""JsonLogic's operators (https://jsonlogic.com/operations.html), by name."""

__all__ = [
    "STANDARD_OPERATORS",
    "Builder",
    "Expr",
    "RuleCompiler",
    "RuleError",
    "constant",
    "is_number",
]
