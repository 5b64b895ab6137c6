"""Compile a validated :class:`~fader_engine.model.Document` into evaluation functions.

Everything that can be decided once is decided here: cumulative split weights, and even the
:class:`Resolution` objects themselves (one per variant and reason), so that evaluating a flag
allocates nothing on the common paths. What is decided is handed to
:mod:`fader_engine.codegen` as plain data (:class:`~fader_engine.codegen.FlagPlan`), which
writes each flag with targeting, and each segment, as one Python function. Flags that need no
code (off, or one constant for everyone) get a constant function directly. That is how
evaluation stays well under a microsecond in CPython
(docs/adr/0001-engine-compiles-to-generated-functions.md).

The compiler trusts its input: :mod:`fader_engine.parse` has already checked that variants
exist, weights sum up, patterns compile and references are acyclic. Evaluation must never
raise, so each generated flag function still catches unexpected exceptions and reports
``GENERAL``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate

from fader_engine.codegen import (
    FlagPlan,
    Matcher,
    RulePlan,
    Served,
    SplitPlan,
    generate_flag_function,
    generate_segment_function,
)
from fader_engine.evaluate import CompiledFlag, Engine, FlagFunction
from fader_engine.model import Document, Flag, Serve, Split
from fader_engine.result import ErrorCode, Reason, Resolution


class Compiler:
    """Holds what one document's flags share: segments (generated once each) and the flags."""

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._segments: dict[str, Matcher] = {}
        self.flags: dict[str, CompiledFlag] = {}

    def segment(self, key: str) -> Matcher:
        """The membership function of segment `key`; many rules may share one segment."""
        function = self._segments.get(key)
        if function is None:
            # Recursion through nested segments ends: parse has rejected segment cycles.
            function = generate_segment_function(self._doc.segments[key], self.segment)
            self._segments[key] = function
        return function

    def serve(self, flag: Flag, serve: Serve, reason: Reason) -> Served:
        if serve.split is not None:
            return self.split(flag, serve.split)
        assert serve.variant is not None
        return Resolution(
            flag.variants[serve.variant], serve.variant, reason, None, None, flag.metadata
        )

    def split(self, flag: Flag, split: Split) -> SplitPlan:
        seed = ".".join(split.by) if split.by else "targetingKey"
        return SplitPlan(
            flag_key=flag.key,
            by=split.by,
            algorithm=self._doc.bucketing,
            bounds=tuple(accumulate(w.weight for w in split.weights))[:-1],
            results=tuple(
                Resolution(
                    flag.variants[w.variant], w.variant, Reason.SPLIT, None, None, flag.metadata
                )
                for w in split.weights
            ),
            missing=Resolution(
                None,
                None,
                Reason.ERROR,
                ErrorCode.TARGETING_KEY_MISSING,
                f"flag {flag.key!r} splits by {seed}, which the context lacks",
                flag.metadata,
            ),
        )

    def flag(self, flag: Flag) -> FlagFunction:
        meta = flag.metadata
        off = Resolution(
            flag.variants[flag.off_variant], flag.off_variant, Reason.DISABLED, None, None, meta
        )
        if not flag.enabled:
            return lambda ctx, env: off

        has_targeting = bool(flag.rules) or bool(flag.prerequisites)
        default = self.serve(flag, flag.default, Reason.DEFAULT if has_targeting else Reason.STATIC)
        if not has_targeting and isinstance(default, Resolution):
            constant = default
            return lambda ctx, env: constant
        plan = FlagPlan(
            key=flag.key,
            metadata=meta,
            off=off,
            prerequisites=flag.prerequisites,
            rules=tuple(
                RulePlan(rule.clauses, self.serve(flag, rule.serve, Reason.TARGETING_MATCH))
                for rule in flag.rules
            ),
            default=default,
        )
        return generate_flag_function(plan, self.flags, self.segment)


def compile_document(doc: Document, clock: Callable[[], float] | None = None) -> Engine:
    """Compile every flag of `doc`; `clock` is only kept for API symmetry with flagd documents."""
    compiler = Compiler(doc)
    for key, flag in doc.flags.items():
        compiler.flags[key] = CompiledFlag(key, flag.type, compiler.flag(flag), flag.metadata)
    return Engine(compiler.flags, clock=clock)
