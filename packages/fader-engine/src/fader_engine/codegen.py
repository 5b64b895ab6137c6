"""Write each flag (and each segment) as the body of one generated Python function.

CPython spends most of a tiny evaluation on function calls (~50 ns each here). A closure per
clause and per rule costs five or six calls for a flag with three rules; writing the flag's
whole decision as one function costs one. Why and what it costs:
docs/adr/0001-engine-compiles-to-generated-functions.md.

This module is the only place that says what a *clause* means (:func:`clause_expression`:
attribute lookup, the missing-attribute rule, negation, ``exists``, ``in_segment``) and what a
*split* means (:func:`split_expression`); what each operator means comes from the one table in
:mod:`fader_engine.operators`. Segments are generated the same way, so a clause reads the same
whether a flag's rule or a segment's rule holds it.

The generated source contains **no user data**: every attribute name, operand and prebuilt
:class:`Resolution` is bound in the function's namespace under a generated identifier (``_c0``,
``_c1``...), so a flag key or a clause value can never become code. The input is what
:mod:`fader_engine.compile` decided once (:class:`FlagPlan`, :class:`SplitPlan`), passed in
explicitly; this module does not know the compiler.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType
from typing import Any

import mmh3

from fader_engine.bucketing import BucketingAlgorithm, hash_v3
from fader_engine.evaluate import FlagFunction
from fader_engine.model import (
    TOTAL_WEIGHT,
    Clause,
    Operator,
    Prerequisite,
    Segment,
    VendorBucketing,
)
from fader_engine.operators import OPERATORS
from fader_engine.result import ErrorCode, Reason, Resolution
from fader_engine.vendor_bucketing import lookup, owner_function

Matcher = Callable[[Mapping[str, Any]], bool]
"""A segment's membership test: context in, whether it belongs."""
SegmentFunctions = Callable[[str], Matcher]
"""The membership function of a segment key (the compiler generates each once)."""


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """A split with everything decided: each variant's bucket range and its prebuilt result."""

    flag_key: str
    by: tuple[str, ...]
    """The seed attribute path; empty for the targeting key."""
    algorithm: BucketingAlgorithm
    """The document's algorithm, used unless `bucketing` names a vendor's."""
    bounds: tuple[int, ...]
    """Upper bounds of every variant's range but the last; ``bisect`` finds a point's owner."""
    results: tuple[Resolution, ...]
    missing: Resolution
    """Served when the context lacks the seed (``TARGETING_KEY_MISSING``)."""
    bucketing: VendorBucketing | None = None


Served = Resolution | SplitPlan
"""What a rule or the default serves: a constant result or a split."""


@dataclass(frozen=True, slots=True)
class RulePlan:
    clauses: tuple[Clause, ...]
    serve: Served


@dataclass(frozen=True, slots=True)
class FlagPlan:
    """An enabled flag with targeting, as the compiler leaves it for code generation."""

    key: str
    metadata: Mapping[str, Any]
    off: Resolution
    prerequisites: tuple[Prerequisite, ...]
    rules: tuple[RulePlan, ...]
    default: Served


class Source:
    """The namespace a generated function's identifiers refer to, and the compiling of it."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def function(self, lines: list[str], filename: str) -> Any:
        """Compile ``def generated(ctx, ...)`` made of `lines`; the first line is its head."""
        namespace = dict(self.namespace)
        exec(_compiled("\n".join(lines)), namespace)  # noqa: S102 - no user data in the text
        function = namespace["generated"]
        # Tracebacks name the flag (evaluation catches them, but a debugger shows them).
        function.__code__ = function.__code__.replace(co_filename=filename)
        return function


_CACHED_TEXT_LIMIT = 8192
"""Longer texts (flags with hundreds of clauses) are compiled every time: the cache stays small."""


def _compiled(text: str) -> CodeType:
    if len(text) > _CACHED_TEXT_LIMIT:
        return compile(text, "<fader>", "exec")
    return _compiled_shape(text)


@lru_cache(maxsize=1024)
def _compiled_shape(text: str) -> CodeType:
    """Compiled source, shared by every function of the same shape.

    Python's compiler costs ~0.3 ms for a flag's function, most of a document's load. The text
    holds no user data, only a shape (which operators, how many clauses, which split), so flags
    and segments of one shape, and every unchanged flag when an SDK reloads a patched document,
    reuse one code object; the namespace alone differs.
    """
    return compile(text, "<fader>", "exec")


# -- clauses ------------------------------------------------------------------------------------


def _load(source: Source, path: tuple[str, ...]) -> str:
    """The expression that reads an attribute: ``None`` when it (or a parent) is missing."""
    if len(path) == 1:
        return f"ctx.get({source.bind(path[0])})"
    return f"{source.bind(lookup)}(ctx, {source.bind(path)})"


def clause_expression(source: Source, clause: Clause, segments: SegmentFunctions) -> str:
    """A boolean expression for one clause over the local ``ctx`` (scratch variable ``_v``)."""
    if clause.op is Operator.IN_SEGMENT:
        calls = " or ".join(f"{source.bind(segments(key))}(ctx)" for key in clause.values)
        return f"(not ({calls}))" if clause.negate else f"({calls})"
    load = _load(source, clause.attribute)
    if clause.op is Operator.EXISTS:
        return f"({load} is None)" if clause.negate else f"({load} is not None)"
    semantics = OPERATORS[clause.op]
    operands = {name: source.bind(v) for name, v in semantics.operands(clause.values).items()}
    if clause.negate:
        # A missing (or null) attribute never matches, negated or not (docs/flag-format.md).
        test = semantics.template.format(load="_v", value="_v", **operands)
        return f"((_v := {load}) is not None and not ({test}))"
    # Every template is False for None: the missing-attribute rule holds without a test.
    return semantics.template.format(load=f"(_v := {load})", value="_v", **operands)


def _condition(source: Source, clauses: tuple[Clause, ...], segments: SegmentFunctions) -> str:
    """All clauses of a rule; a rule without clauses matches every context."""
    return " and ".join(clause_expression(source, c, segments) for c in clauses) or "True"


# -- serving ------------------------------------------------------------------------------------


def _split_seed(flag_key: str, by: tuple[str, ...]) -> Callable[[Mapping[str, Any]], str | None]:
    """The seed of a split by an attribute: the flag key and a string or integer value."""

    def seed(ctx: Mapping[str, Any]) -> str | None:
        value = lookup(ctx, by)
        cls = value.__class__
        # Exact classes: a boolean is not an integer seed, and a float has no canonical text.
        return f"{flag_key}{value}" if cls is str or cls is int else None

    return seed


def split_expression(source: Source, split: SplitPlan) -> str:
    """The resolution a split serves, over the local ``ctx``: bucket the seed, find the owner.

    v2 hashes the seed string (``flag_key + targeting_key`` by default); v3 hashes its canonical
    CBOR, whose default seed is the array ``[flag_key, targeting_key]``
    (:mod:`fader_engine.bucketing`). The default v2 split is the commonest: it is all inline.
    A vendor's bucketing (imported rollouts) is one call to its owner function, which answers
    the variant's index or -1 when the context lacks every seed attribute.
    """
    if split.bucketing is not None:
        vendor = owner_function(split.bucketing, split.by, split.bounds)
        pick = f"(_v := {source.bind(vendor)}(ctx)) >= 0"
        return f"({source.bind(split.results)}[_v] if {pick} else {source.bind(split.missing)})"
    v2 = split.algorithm is BucketingAlgorithm.V2
    if split.by:
        guard = f"(_v := {source.bind(_split_seed(split.flag_key, split.by))}(ctx)) is not None"
        seed = "_v"
    else:
        guard = "(_v := ctx.get('targetingKey')).__class__ is str"
        key = source.bind(split.flag_key)
        seed = f"{key} + _v" if v2 else f"[{key}, _v]"
    if v2:
        hashed = f"{source.bind(mmh3.hash)}({seed}, 0, False)"  # unsigned, like hash_v2
    else:
        hashed = f"{source.bind(hash_v3)}({seed})"
    point = f"({hashed} * {TOTAL_WEIGHT}) >> 32"
    owner = f"{source.bind(bisect_right)}({source.bind(split.bounds)}, {point})"
    return f"({source.bind(split.results)}[{owner}] if {guard} else {source.bind(split.missing)})"


def _serve_expression(source: Source, served: Served) -> str:
    if isinstance(served, Resolution):
        return source.bind(served)
    return split_expression(source, served)


# -- functions ----------------------------------------------------------------------------------


def generate_flag_function(plan: FlagPlan, segments: SegmentFunctions) -> FlagFunction:
    """The evaluation function of an enabled flag that has targeting.

    A prerequisite is looked up when evaluating, in the flags of the engine evaluating
    (``env.flags``), not bound now: the function then depends on nothing but `plan` and the
    segments, and stays valid in an engine whose other flags changed.
    """
    source = Source()
    disabled = source.bind(Reason.DISABLED)
    off = source.bind(plan.off)
    body: list[str] = []
    for prerequisite in plan.prerequisites:
        key = source.bind(prerequisite.flag)
        allowed = source.bind(frozenset(prerequisite.variants))
        body += [
            f"_o = env.flags[{key}](ctx, env)",
            f"if _o.reason is {disabled} or _o.variant not in {allowed}:",
            f"    return {off}",
        ]
    for rule in plan.rules:
        body += [
            f"if {_condition(source, rule.clauses, segments)}:",
            f"    return {_serve_expression(source, rule.serve)}",
        ]
    body.append(f"return {_serve_expression(source, plan.default)}")
    failure = source.bind(_failure(plan.key, plan.metadata))
    function: FlagFunction = source.function(
        ["def generated(ctx, env):", "    try:"]
        + [f"        {line}" for line in body]
        + [
            "    except Exception as exc:  # evaluation must never raise",
            f"        return {failure}(exc)",
        ],
        f"<fader flag {plan.key}>",
    )
    return function


def generate_segment_function(segment: Segment, segments: SegmentFunctions) -> Matcher:
    """Membership of one segment: listed keys first (excluded wins over rules), then its rules.

    Exceptions propagate to the calling flag's function, which reports them as ``GENERAL``.
    """
    source = Source()
    body = [
        "_k = ctx.get('targetingKey')",
        "if _k.__class__ is str:",
        f"    if _k in {source.bind(segment.included)}:",
        "        return True",
        f"    if _k in {source.bind(segment.excluded)}:",
        "        return False",
    ]
    for rule in segment.rules:
        body += [f"if {_condition(source, rule.clauses, segments)}:", "    return True"]
    body.append("return False")
    function: Matcher = source.function(
        ["def generated(ctx):"] + [f"    {line}" for line in body],
        f"<fader segment {segment.key}>",
    )
    return function


def _failure(flag_key: str, metadata: Mapping[str, Any]) -> Callable[[Exception], Resolution]:
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
