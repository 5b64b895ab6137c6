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

A patched document is compiled by :func:`recompile`, which keeps the functions of every flag
the patch cannot have changed. What a flag's function depends on, and so what invalidates it:

* its own definition (the patch replaced or removed it);
* the segments its rules name, and the segments those name: segment functions are bound into
  the flag's code, so a replaced segment recompiles every flag reaching it;
* the document's bucketing algorithm, written into every split: a change recompiles all;
* **not** its prerequisites: they are looked up in the evaluating engine's flags
  (:class:`~fader_engine.evaluate.EvaluationEnv`), so a changed prerequisite is seen as is;
* **not** the document's metadata, which no flag reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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
from fader_engine.model import Document, Flag, Serve, Split, UnleashBucketing
from fader_engine.references import References
from fader_engine.result import ErrorCode, Reason, Resolution


class Compiler:
    """Holds what one document's flags share: its segments, each generated once (or taken
    from `segments`, the still valid functions of the previous version of the document)."""

    def __init__(self, doc: Document, segments: Mapping[str, Matcher] | None = None) -> None:
        self._doc = doc
        self.segments: dict[str, Matcher] = dict(segments or {})
        """The segment functions generated (or reused) so far."""

    def segment(self, key: str) -> Matcher:
        """The membership function of segment `key`; many rules may share one segment."""
        function = self.segments.get(key)
        if function is None:
            # Recursion through nested segments ends: parse has rejected segment cycles.
            function = generate_segment_function(self._doc.segments[key], self.segment)
            self.segments[key] = function
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
        if isinstance(split.bucketing, UnleashBucketing) and split.bucketing.fallback:
            seed = " or ".join([seed, *(".".join(p) for p in split.bucketing.fallback)])
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
            bucketing=split.bucketing,
        )

    def compiled(self, flag: Flag) -> CompiledFlag:
        return CompiledFlag(flag.key, flag.type, self.flag(flag), flag.metadata)

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
        return generate_flag_function(plan, self.segment)


@dataclass(frozen=True, slots=True)
class Compiled:
    """What compiling a document produced: its engine, and the segment functions its flags
    use (never modified once built: the next version of the document copies them)."""

    engine: Engine
    segments: dict[str, Matcher]


def compile_flags(doc: Document, clock: Callable[[], float] | None = None) -> Compiled:
    """Compile every flag of `doc`."""
    compiler = Compiler(doc)
    flags = {key: compiler.compiled(flag) for key, flag in doc.flags.items()}
    return Compiled(Engine(flags, clock=clock), compiler.segments)


def compile_document(doc: Document, clock: Callable[[], float] | None = None) -> Engine:
    """Compile every flag of `doc`; `clock` is only kept for API symmetry with flagd documents."""
    return compile_flags(doc, clock).engine


def recompile(
    previous: Compiled,
    before: Document,
    after: Document,
    changed: tuple[Iterable[str], Iterable[str]],
    references: References,
) -> Compiled:
    """Compile `after`, the patched `before`, reusing `previous` (what `before` compiled to).

    `changed` holds the keys of the flags, then of the segments, that the patch replaced, added
    or removed, in its order; every other entry of `after` is the one of `before`.
    `references` are `after`'s. The flags the patch left alone keep their
    :class:`CompiledFlag` (the same objects) unless a segment they reach changed (see the
    module docstring); the engine lists the flags in the order of ``after.flags``, as
    :func:`compile_flags` would (existing keys stay in place, new ones come last).
    """
    flag_keys, segment_keys = changed
    if after.bucketing is not before.bucketing:  # written into every split: nothing is kept
        flag_keys = [*after.flags, *(key for key in before.flags if key not in after.flags)]
        segment_keys = [*before.segments, *after.segments]
    stale_segments = references.segments_depending_on(segment_keys)
    compiler = Compiler(
        after,
        {key: f for key, f in previous.segments.items() if key not in stale_segments},
    )
    changes: dict[str, CompiledFlag | None] = {}
    for key in flag_keys:
        flag = after.flags.get(key)
        changes[key] = None if flag is None else compiler.compiled(flag)
    for key in references.flags_naming_any(stale_segments):
        if key not in changes:
            changes[key] = compiler.compiled(after.flags[key])
    return Compiled(previous.engine.with_flags(changes), compiler.segments)
