"""Conditions as Fader clauses: conjunctions, alternatives, and helper segments for the rest.

An Unleash strategy is an AND of constraints, each of which may be true for a context Fader's
clauses cannot describe with one clause: Unleash's ``NOT_IN`` and every ``inverted`` constraint
are *true* when the context field is missing, while a Fader clause on a missing attribute never
matches, negated or not. Such a constraint becomes ``not in_segment(S)`` where the helper
segment ``S`` holds the positive test: ``in_segment`` has no attribute, so its negation is true
for a missing field, exactly as in Unleash. A test that needs several alternatives (a string
operator that a boolean attribute also satisfies) becomes ``in_segment`` of a helper segment
with one rule per alternative. So every constraint is one conjunction and a strategy stays one
Fader rule per stickiness alternative.

Helper segments are named by a hash of their rules, so equal tests share one segment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Clause = dict[str, Any]
Conj = list[Clause]
"""Clauses that must all match (one Fader rule's clauses)."""
Alternatives = list[Conj]
"""Conjunctions of which any may match: ``[]`` never matches, ``[[]]`` always does."""

NEVER: Alternatives = []
ALWAYS: Alternatives = [[]]


class UntranslatableError(Exception):
    """A construct with no exact Fader equivalent: `construct` says which, `detail` why."""

    def __init__(self, construct: str, detail: str) -> None:
        super().__init__(f"{construct}: {detail}")
        self.construct = construct
        self.detail = detail


@dataclass
class HelperSegments:
    """The helper segments a translation needs, keyed by a digest of their rules."""

    segments: dict[str, Any] = field(default_factory=dict)

    def key_for(self, rules: Alternatives) -> str:
        text = json.dumps(rules, sort_keys=True, separators=(",", ":"))
        key = "unleash-test-" + hashlib.sha256(text.encode()).hexdigest()[:16]
        self.segments.setdefault(
            key,
            {
                "description": "Helper of an imported Unleash constraint (migration-unleash.md)",
                "rules": [{"clauses": conj} for conj in rules],
            },
        )
        return key

    def negation(self, rules: Alternatives) -> Alternatives:
        """The context does NOT satisfy `rules` (missing attributes included)."""
        if not rules:
            return ALWAYS
        if rules == ALWAYS:
            return NEVER
        return [[{"op": "in_segment", "values": [self.key_for(rules)], "negate": True}]]

    def as_conjunction(self, rules: Alternatives) -> Conj | None:
        """`rules` as one conjunction (``None`` when they never match)."""
        if not rules:
            return None
        if len(rules) == 1:
            return rules[0]
        return [{"op": "in_segment", "values": [self.key_for(rules)]}]


def conjoin(parts: list[Alternatives]) -> Alternatives:
    """All of `parts` (each a set of alternatives): the cross product of their alternatives."""
    out: Alternatives = ALWAYS
    for part in parts:
        out = [a + b for a in out for b in part]
        if not out:
            return NEVER
    return out
