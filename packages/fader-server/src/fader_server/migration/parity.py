"""Parity: the same contexts through the source system's own SDK and through Fader.

An import is verified, not trusted. Every translated flag is evaluated for every context twice,
by the source's SDK (:class:`~fader_server.migration.model.SourceEvaluator`) and by Fader's
engine loaded from the translated document, and the two :class:`Answer` values are compared in
the source's own terms (the translation says which source answer each Fader variant stands
for). The report counts agreement per flag and keeps the first few disagreements with both
answers, so a user sees *which* users would be served differently and why.

A context the source cannot answer deterministically (Unleash's random stickiness, say) is the
source evaluator's to flag: it answers with ``variant`` ``None`` and a `detail` starting with
:data:`NONDETERMINISTIC`; such contexts are counted apart, never as agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fader_engine import Engine
from fader_engine.formats import load
from fader_server.migration.model import (
    JSON,
    Answer,
    SourceContextError,
    SourceEvaluator,
    Translation,
)

NONDETERMINISTIC = "nondeterministic:"
"""Prefix of an :attr:`Answer.detail` for a source answer that depends on chance."""
EXAMPLES_PER_FLAG = 5
"""Disagreements kept per flag: enough to see the pattern, small enough to print."""


@dataclass(frozen=True, slots=True)
class Disagreement:
    context: Mapping[str, Any]
    source: Answer
    fader: Answer

    def as_json(self) -> JSON:
        return {
            "context": dict(self.context),
            "source": _answer_json(self.source),
            "fader": _answer_json(self.fader),
        }


def _answer_json(answer: Answer) -> JSON:
    return {"value": answer.value, "variant": answer.variant, "detail": answer.detail}


@dataclass(slots=True)
class FlagParity:
    """One flag's row of the parity table."""

    source_key: str
    fader_key: str
    contexts: int = 0
    agreed: int = 0
    nondeterministic: int = 0
    examples: list[Disagreement] = field(default_factory=list)

    @property
    def disagreed(self) -> int:
        return self.contexts - self.agreed - self.nondeterministic

    def as_json(self) -> JSON:
        return {
            "flag": self.source_key,
            "fader_flag": self.fader_key,
            "contexts": self.contexts,
            "agreed": self.agreed,
            "disagreed": self.disagreed,
            "nondeterministic": self.nondeterministic,
            "examples": [d.as_json() for d in self.examples],
        }


@dataclass(frozen=True, slots=True)
class ParityReport:
    """The whole parity table: one row per translated flag."""

    flags: tuple[FlagParity, ...]
    contexts: int

    @property
    def evaluations(self) -> int:
        return sum(f.contexts for f in self.flags)

    @property
    def agreed(self) -> int:
        return sum(f.agreed for f in self.flags)

    @property
    def disagreed(self) -> int:
        return sum(f.disagreed for f in self.flags)

    @property
    def complete(self) -> bool:
        """Every deterministic evaluation agreed (vacuously true with no contexts)."""
        return self.disagreed == 0

    @property
    def agreement(self) -> float:
        """Share of deterministic evaluations that agreed, 0..1 (1 when there were none)."""
        decided = self.agreed + self.disagreed
        return 1.0 if decided == 0 else self.agreed / decided

    def as_json(self) -> JSON:
        return {
            "contexts": self.contexts,
            "evaluations": self.evaluations,
            "agreed": self.agreed,
            "disagreed": self.disagreed,
            "agreement": self.agreement,
            "complete": self.complete,
            "flags": [f.as_json() for f in self.flags],
        }


def fader_answer(translation: Translation, engine: Engine, fader_key: str, ctx: Any) -> Answer:
    """Fader's answer for one flag, in the source's terms (an error is the default: no variant)."""
    result = engine.evaluate(fader_key, ctx)
    if result.variant is None:
        detail = result.error_code.value if result.error_code is not None else result.reason.value
        return Answer(None, None, detail)
    known = translation.answers.get(fader_key, {}).get(str(result.variant))
    if known is None:
        return Answer(result.value, f"fader:{result.variant}", result.reason.value)
    return Answer(known.value, known.variant, result.reason.value)


def check_parity(
    translation: Translation,
    evaluator: SourceEvaluator,
    contexts: Sequence[Mapping[str, Any]],
    *,
    clock: Callable[[], float] = lambda: 0.0,
    flags: Sequence[str] | None = None,
) -> ParityReport:
    """Evaluate every translated flag (or only `flags`, source keys) for every context.

    `clock` feeds the engine's evaluation timestamp (only flagd documents read it); the source
    SDKs read their own clock, so a verification is meant for documents whose answers do not
    depend on the time of day, or for contexts that carry the time they are evaluated at.
    A context the source cannot take raises :class:`SourceContextError` naming it (1-based).
    """
    engine = load(translation.document, clock=clock)
    wanted = translation.keys if flags is None else {k: translation.keys[k] for k in flags}
    rows: list[FlagParity] = []
    for source_key, fader_key in sorted(wanted.items()):
        if fader_key not in engine:
            continue  # reported as unsupported by the translation, not evaluated
        row = FlagParity(source_key, fader_key)
        for index, context in enumerate(contexts):
            row.contexts += 1
            try:
                theirs = evaluator.answer(source_key, context)
            except SourceContextError as exc:
                raise SourceContextError(str(exc), index) from exc
            if theirs.variant is None and theirs.detail.startswith(NONDETERMINISTIC):
                row.nondeterministic += 1
                continue
            ours = fader_answer(translation, engine, fader_key, context)
            if theirs.agrees(ours):
                row.agreed += 1
            elif len(row.examples) < EXAMPLES_PER_FLAG:
                row.examples.append(Disagreement(dict(context), theirs, ours))
        rows.append(row)
    return ParityReport(tuple(rows), len(contexts))
