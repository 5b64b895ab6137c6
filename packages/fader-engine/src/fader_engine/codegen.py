"""Generate one Python function per flag, so evaluation is a single call.

CPython spends most of a tiny evaluation on function calls (~50 ns each here). A closure per
clause and per rule costs five or six calls for a flag with three rules; generating the flag's
whole decision as the body of one function costs one. The generated source contains **no user
data**: every attribute name, operand set, predicate and prebuilt :class:`Resolution` is passed
in through the function's namespace under a generated identifier (``_c0``, ``_r1``...), so a
flag key or a clause value can never become code.

Shapes that are not worth inlining (nested attribute paths, segments, splits, the less common
operators) are still compiled by :class:`~fader_engine.compile.Compiler` and called from the
generated body; their semantics are defined once, there and in :mod:`fader_engine.operators`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import mmh3

from fader_engine.evaluate import EvaluationEnv, FlagFunction
from fader_engine.model import TOTAL_WEIGHT, Clause, Flag, Operator
from fader_engine.operators import OPERATORS
from fader_engine.result import ErrorCode, Reason, Resolution

if TYPE_CHECKING:
    from fader_engine.compile import Compiler, Server


class _Source:
    """Accumulates generated lines and the namespace their identifiers refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name


def _clause_expression(source: _Source, compiler: Compiler, clause: Clause) -> str:
    """A boolean expression for one clause over the local ``ctx`` (and scratch ``_v``)."""
    simple = len(clause.attribute) == 1 and not clause.negate
    op = clause.op
    if simple and op in (Operator.ENDS_WITH, Operator.STARTS_WITH):
        name = source.const(clause.attribute[0])
        operands = source.const(tuple(clause.values))
        method = "endswith" if op is Operator.ENDS_WITH else "startswith"
        return f"((_v := ctx.get({name})).__class__ is str and _v.{method}({operands}))"
    if simple and op is Operator.IN:
        name = source.const(clause.attribute[0])
        strings = source.const(frozenset(v for v in clause.values if v.__class__ is str))
        generic = source.const(OPERATORS[Operator.IN](clause.values))
        return (
            f"(_v in {strings} if (_v := ctx.get({name})).__class__ is str "
            f"else (_v is not None and {generic}(_v)))"
        )
    matcher = source.const(compiler.clause(clause))
    return f"{matcher}(ctx)"


def _serve_expression(source: _Source, served: Resolution | Server) -> str:
    if isinstance(served, Resolution):
        return source.const(served)
    inline = getattr(served, "inline_v2", None)
    if inline is not None:
        # The commonest split (v2, by targeting key), inlined: bisect over bucket bounds.
        flag_key, bounds, results, missing = inline
        return (
            f"({source.const(results)}[{source.const(bisect_right)}({source.const(bounds)}, "
            f"({source.const(mmh3.hash)}({source.const(flag_key)} + _v, 0, False) * {TOTAL_WEIGHT})"
            f" >> 32)] if (_v := ctx.get('targetingKey')).__class__ is str "
            f"else {source.const(missing)})"
        )
    return f"{source.const(served)}(ctx)"


def generate_flag_function(
    compiler: Compiler, flag: Flag, off: Resolution, default: Resolution | Server
) -> FlagFunction:
    """Build the evaluation function of an enabled flag that has targeting."""
    source = _Source()
    flags = source.const(compiler.flags)  # late-bound: prerequisites may compile later
    disabled = source.const(Reason.DISABLED)
    off_name = source.const(off)
    body = source.lines
    for prerequisite in flag.prerequisites:
        key = source.const(prerequisite.flag)
        allowed = source.const(frozenset(prerequisite.variants))
        body += [
            f"_o = {flags}[{key}].evaluate(ctx, env)",
            f"if _o.reason is {disabled} or _o.variant not in {allowed}:",
            f"    return {off_name}",
        ]
    for rule in flag.rules:
        served = compiler.serve(flag, rule.serve, Reason.TARGETING_MATCH)
        conditions = [_clause_expression(source, compiler, c) for c in rule.clauses]
        condition = " and ".join(conditions) if conditions else "True"
        body += [f"if {condition}:", f"    return {_serve_expression(source, served)}"]
    body.append(f"return {_serve_expression(source, default)}")

    failure = source.const(_failure(flag.key, flag.metadata))
    text = "\n".join(
        ["def evaluate(ctx, env):", "    try:"]
        + [f"        {line}" for line in body]
        + [
            "    except Exception as exc:  # evaluation must never raise",
            f"        return {failure}(exc)",
        ]
    )
    namespace = dict(source.namespace)
    exec(compile(text, f"<fader flag {flag.key}>", "exec"), namespace)  # noqa: S102 - no user data in text
    function: FlagFunction = namespace["evaluate"]
    return function


def _failure(flag_key: str, metadata: Mapping[str, Any]) -> Any:
    def failure(exc: Exception) -> Resolution:
        return Resolution(
            None,
            None,
            Reason.ERROR,
            ErrorCode.GENERAL,
            f"flag {flag_key!r} failed to evaluate: {type(exc).__name__}: {exc}",
            metadata,
        )

    return failure


__all__ = ["EvaluationEnv", "generate_flag_function"]
