"""Compile a validated :class:`~fader_engine.model.Document` into closures.

Everything that can be decided once is decided here: operator lookups, attribute paths, regular
expressions, cumulative split weights and even the :class:`Resolution` objects themselves (one
per variant and reason), so that evaluating a flag is a handful of dictionary reads and calls
and allocates nothing on the common paths. That is how evaluation stays under a microsecond in
CPython (PRODUCT.md §9).

The compiler trusts its input: :mod:`fader_engine.parse` has already checked that variants
exist, weights sum up, patterns compile and references are acyclic. Evaluation must never
raise, so each flag's closure still catches unexpected exceptions and reports ``GENERAL``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

import mmh3

from fader_engine.bucketing import BucketingAlgorithm, hash_v3
from fader_engine.codegen import generate_flag_function
from fader_engine.evaluate import CompiledFlag, Engine, FlagFunction
from fader_engine.model import (
    TOTAL_WEIGHT,
    Clause,
    Document,
    Flag,
    Operator,
    Segment,
    Serve,
    Split,
)
from fader_engine.operators import OPERATORS
from fader_engine.result import ErrorCode, Reason, Resolution

Matcher = Callable[[Mapping[str, Any]], bool]
Server = Callable[[Mapping[str, Any]], Resolution]
"""Serves a matched rule or the default: a constant resolution or a split."""

_hash = mmh3.hash


def _always(ctx: Mapping[str, Any]) -> bool:
    return True


def lookup(ctx: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The attribute at `path` (nested objects), or ``None`` when any step is missing."""
    value: Any = ctx
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


class Compiler:
    """Holds what one document's flags share: segments (memoised) and the flag table."""

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._segments: dict[str, Matcher] = {}
        self.flags: dict[str, CompiledFlag] = {}

    # -- clauses and segments -------------------------------------------------------------

    def clause(self, clause: Clause) -> Matcher:
        negate = clause.negate
        if clause.op is Operator.IN_SEGMENT:
            members = tuple(self.segment(key) for key in clause.values)
            if len(members) == 1:
                only = members[0]
                return (lambda ctx: not only(ctx)) if negate else only
            if negate:
                return lambda ctx: not any(m(ctx) for m in members)
            return lambda ctx: any(m(ctx) for m in members)

        path = clause.attribute
        if clause.op is Operator.EXISTS:
            if len(path) == 1:
                name = path[0]
                return lambda ctx: (ctx.get(name) is not None) is not negate
            return lambda ctx: (lookup(ctx, path) is not None) is not negate

        fast = fast_clause(clause)
        if fast is not None:
            return fast
        test = OPERATORS[clause.op](clause.values)
        # A missing (or null) attribute never matches, negated or not (PRODUCT.md §2).
        if len(path) == 1:
            name = path[0]
            if negate:
                return lambda ctx: (v := ctx.get(name)) is not None and not test(v)
            return lambda ctx: (v := ctx.get(name)) is not None and test(v)
        if negate:
            return lambda ctx: (v := lookup(ctx, path)) is not None and not test(v)
        return lambda ctx: (v := lookup(ctx, path)) is not None and test(v)

    def clauses(self, clauses: tuple[Clause, ...]) -> Matcher:
        matchers = tuple(self.clause(c) for c in clauses)
        if not matchers:
            return _always
        if len(matchers) == 1:
            return matchers[0]
        if len(matchers) == 2:
            first, second = matchers
            return lambda ctx: first(ctx) and second(ctx)
        return lambda ctx: all(m(ctx) for m in matchers)

    def segment(self, key: str) -> Matcher:
        cached = self._segments.get(key)
        if cached is not None:
            return cached
        segment: Segment = self._doc.segments[key]
        # Memoised: many rules may share a segment; parse has rejected segment cycles.
        rules = tuple(self.clauses(rule.clauses) for rule in segment.rules)
        included, excluded = segment.included, segment.excluded

        def member(ctx: Mapping[str, Any]) -> bool:
            key = ctx.get("targetingKey")
            if key.__class__ is str:
                if key in included:
                    return True
                if key in excluded:
                    return False
            return any(rule(ctx) for rule in rules)

        self._segments[key] = member
        return member

    # -- serving ------------------------------------------------------------------------------

    def serve(self, flag: Flag, serve: Serve, reason: Reason) -> Resolution | Server:
        if serve.split is not None:
            return self.split(flag, serve.split)
        assert serve.variant is not None
        return Resolution(
            flag.variants[serve.variant], serve.variant, reason, None, None, flag.metadata
        )

    def split(self, flag: Flag, split: Split) -> Server:
        results = tuple(
            Resolution(flag.variants[w.variant], w.variant, Reason.SPLIT, None, None, flag.metadata)
            for w in split.weights
        )
        # Upper bounds of each variant's bucket range; bisect finds the owner of a point.
        bounds = tuple(accumulate(w.weight for w in split.weights))[:-1]
        total = TOTAL_WEIGHT
        flag_key = flag.key
        missing = Resolution(
            None,
            None,
            Reason.ERROR,
            ErrorCode.TARGETING_KEY_MISSING,
            f"flag {flag_key!r} splits by "
            f"{'.'.join(split.by) if split.by else 'targetingKey'}, which the context lacks",
            flag.metadata,
        )
        by = split.by
        v3 = self._doc.bucketing is BucketingAlgorithm.V3

        if not by:
            if v3:

                def serve_v3(ctx: Mapping[str, Any]) -> Resolution:
                    key = ctx.get("targetingKey")
                    if key.__class__ is not str:
                        return missing
                    point = (hash_v3([flag_key, key]) * total) >> 32
                    return results[bisect_right(bounds, point)]

                return serve_v3

            def serve_v2(ctx: Mapping[str, Any]) -> Resolution:
                key = ctx.get("targetingKey")
                if key.__class__ is not str:
                    return missing
                point = (_hash(flag_key + key, 0, False) * total) >> 32
                return results[bisect_right(bounds, point)]

            serve_v2.inline_v2 = (flag_key, bounds, results, missing)  # type: ignore[attr-defined]
            return serve_v2

        def serve_by(ctx: Mapping[str, Any]) -> Resolution:
            value = lookup(ctx, by)
            cls = value.__class__
            if cls is str:
                seed = flag_key + value
            elif cls is int:
                seed = flag_key + str(value)
            else:
                return missing
            hashed = hash_v3(seed) if v3 else _hash(seed, 0, False)
            return results[bisect_right(bounds, (hashed * total) >> 32)]

        return serve_by

    # -- flags --------------------------------------------------------------------------------

    def flag(self, flag: Flag) -> FlagFunction:
        meta = flag.metadata
        off = Resolution(
            flag.variants[flag.off_variant], flag.off_variant, Reason.DISABLED, None, None, meta
        )
        if not flag.enabled:
            return lambda ctx, env: off

        has_targeting = bool(flag.rules) or bool(flag.prerequisites)
        default_reason = Reason.DEFAULT if has_targeting else Reason.STATIC
        default = self.serve(flag, flag.default, default_reason)
        if not has_targeting and isinstance(default, Resolution):
            constant = default
            return lambda ctx, env: constant
        return generate_flag_function(self, flag, off, default)


def fast_clause(clause: Clause) -> Matcher | None:
    """Inlined matchers for the most common clause shapes (one-level attribute, not negated).

    They save a call per clause on the hottest paths; semantics equal the generic form.
    """
    if clause.negate or len(clause.attribute) != 1:
        return None
    name = clause.attribute[0]
    values = clause.values
    if clause.op is Operator.ENDS_WITH:
        suffixes = tuple(values)
        return lambda ctx: (v := ctx.get(name)).__class__ is str and v.endswith(suffixes)
    if clause.op is Operator.STARTS_WITH:
        prefixes = tuple(values)
        return lambda ctx: (v := ctx.get(name)).__class__ is str and v.startswith(prefixes)
    if clause.op is Operator.IN and all(v.__class__ is str for v in values):
        strings = frozenset(values)
        generic = OPERATORS[Operator.IN](values)

        def member(ctx: Mapping[str, Any]) -> bool:
            v = ctx.get(name)
            if v.__class__ is str:
                return v in strings
            return v is not None and generic(v)

        return member
    return None


def compile_document(doc: Document, clock: Callable[[], float] | None = None) -> Engine:
    """Compile every flag of `doc`; `clock` is only kept for API symmetry with flagd documents."""
    compiler = Compiler(doc)
    for key, flag in doc.flags.items():
        compiler.flags[key] = CompiledFlag(key, flag.type, compiler.flag(flag), flag.metadata)
    return Engine(compiler.flags, clock=clock)
