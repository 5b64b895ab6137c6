"""LaunchDarkly segments as Fader segments.

LaunchDarkly decides membership in this order (``Evaluator._simple_segment_match_context``):
``included`` (user keys) and ``includedContexts`` (keys of a kind) admit; then ``excluded`` and
``excludedContexts`` refuse; then any rule admits. Fader's own ``included``/``excluded`` lists
hold targeting keys of *any* kind, so they are not used: every list becomes rules guarded by
the context kind, and the exclusions a helper segment that each imported rule must miss.

Not translated, and why (each an :class:`Unsupported` entry, and so is every flag using it):
big (``unbounded``) segments, whose members live in a big-segment store the SDK queries, not in
the data; rules with a percentage ``weight`` strictly between 0 and 100%, a rollout inside a
segment that Fader's segment rules cannot bucket (0 and 100% are exact: see :func:`_weighted`);
cycles of segments, which LaunchDarkly reports as an evaluation error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fader_server.migration.launchdarkly.clauses import (
    DEFAULT_KIND,
    Formula,
    UntranslatableError,
    always,
    conjoin,
    never,
)
from fader_server.migration.launchdarkly.rollouts import TOTAL
from fader_server.migration.launchdarkly.rules import (
    Helpers,
    fader_key,
    key_rules,
    rule_formula,
    string_list,
)
from fader_server.migration.model import JSON, Unsupported


@dataclass
class Segments:
    """The translated segments: Fader key per LaunchDarkly key, and what could not be."""

    keys: dict[str, str] = field(default_factory=dict)
    documents: dict[str, JSON] = field(default_factory=dict)
    unsupported: dict[str, Unsupported] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lookup(self, key: str, where: str) -> str | None:
        """The Fader key a ``segmentMatch`` on `key` uses (``None``: no such segment)."""
        if key in self.unsupported:
            raise UntranslatableError(
                where,
                f"segment '{key}' is not imported ({self.unsupported[key].construct}: "
                f"{self.unsupported[key].detail})",
            )
        return self.keys.get(key)


def _weighted(raw: Mapping[str, Any], formula: Formula, helpers: Helpers, where: str) -> Formula:
    """A rule with a ``weight``: LaunchDarkly admits the bucket below weight / 100000.

    The bucket is -1 for a context of another kind than ``rolloutContextKind`` and in [0, 1)
    otherwise, so a weight of 100% (or more) admits everyone and a weight of 0 (down to
    -100%) exactly the contexts of another kind. Anything between needs bucketing in a
    segment, which Fader does not have.
    """
    weight = raw.get("weight")
    if weight is None:
        return formula
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise UntranslatableError(where, "'weight' must be an integer")
    if weight >= TOTAL:
        return formula
    if weight <= -TOTAL:
        return never()
    if weight <= 0:
        kind = raw.get("rolloutContextKind") or DEFAULT_KIND
        if not isinstance(kind, str):
            raise UntranslatableError(where, "'rolloutContextKind' must be text")
        return conjoin([formula, helpers.kind_is_not(kind)], where)
    raise UntranslatableError(
        where,
        f"a segment rule admitting {weight / 1000:g}% of matching contexts buckets them "
        "inside the segment, which Fader segments cannot; serve the percentage from the "
        "flags' rules instead",
    )


def _targets(raw: Mapping[str, Any], included: str, helpers: Helpers) -> list[list[JSON]]:
    kind_name = "includedContexts" if included == "included" else "excludedContexts"
    out = key_rules(string_list(raw, included, included), DEFAULT_KIND, helpers)
    targets = raw.get(kind_name) or []
    if not isinstance(targets, list):
        raise UntranslatableError(kind_name, "must be a list")
    for i, target in enumerate(targets):
        where = f"{kind_name} {i + 1}"
        if not isinstance(target, dict):
            raise UntranslatableError(where, "must be an object")
        kind = target.get("contextKind") or DEFAULT_KIND
        if not isinstance(kind, str):
            raise UntranslatableError(where, "'contextKind' must be text")
        out += key_rules(string_list(target, "values", where), kind, helpers)
    return out


class _SegmentTranslator:
    def __init__(
        self,
        raw: Mapping[str, Any],
        helpers: Helpers,
        note_arrays: Callable[[str, str], None],
    ) -> None:
        self.raw = raw
        self.helpers = helpers
        self.note_arrays = note_arrays
        self.out = Segments()
        live = [k for k, v in raw.items() if not (isinstance(v, dict) and v.get("deleted") is True)]
        for key in live:
            self.out.keys[key] = fader_key(key, set(self.out.keys.values()))
        helpers.taken.update(self.out.keys.values())
        self._active: list[str] = []
        self._done: set[str] = set()

    def lookup(self, key: str, where: str) -> str | None:
        if key in self.out.keys and key not in self._done:
            if key in self._active:
                cycle = " -> ".join([*self._active[self._active.index(key) :], key])
                raise UntranslatableError(
                    where,
                    f"segments refer to each other in a cycle ({cycle}); LaunchDarkly "
                    "fails the evaluation",
                )
            self.translate(key)
        return self.out.lookup(key, where)

    def translate(self, key: str) -> None:
        self._active.append(key)
        try:
            document = self._segment(key, self.raw[key])
            self.out.documents[self.out.keys[key]] = document
        except UntranslatableError as exc:
            self.out.unsupported[key] = Unsupported(exc.construct, exc.detail, segment=key)
        finally:
            self._active.pop()
            self._done.add(key)
        if key in self.out.unsupported:
            del self.out.keys[key]

    def _segment(self, key: str, raw: Any) -> JSON:
        if not isinstance(raw, dict):
            raise UntranslatableError("segment", "must be an object")
        if raw.get("unbounded") is True:
            raise UntranslatableError(
                "unbounded",
                "a big segment's members are kept in a big-segment store the SDK queries, not "
                "in this data; export its members into a regular segment first",
            )
        salt = raw.get("salt")
        if salt is not None and not isinstance(salt, str):
            raise UntranslatableError("salt", "must be text")
        rules: list[JSON] = [{"clauses": c} for c in _targets(raw, "included", self.helpers)]
        excluded = _targets(raw, "excluded", self.helpers)
        outside: Formula = always()
        if excluded:
            helper = self.helpers.add(
                f"{self.out.keys[key]}.ld-excluded",
                {
                    "description": f"LaunchDarkly import: contexts excluded from segment '{key}'",
                    "rules": [{"clauses": c} for c in excluded],
                },
            )
            outside = [[{"op": "in_segment", "values": [helper], "negate": True}]]
        raw_rules = raw.get("rules") or []
        if not isinstance(raw_rules, list):
            raise UntranslatableError("rules", "must be a list")
        for i, rule in enumerate(raw_rules):
            where = f"rule {i + 1}"
            if not isinstance(rule, dict):
                raise UntranslatableError(where, "must be an object")
            formula = rule_formula(
                rule.get("clauses"),
                where,
                self.lookup,
                self.helpers,
                self.note_arrays,
            )
            formula = conjoin([_weighted(rule, formula, self.helpers, where), outside], where)
            rules += [{"clauses": clauses} for clauses in formula]
        return {"description": f"LaunchDarkly segment '{key}'", "rules": rules}


def translate_segments(
    raw: Mapping[str, Any], helpers: Helpers, note_arrays: Callable[[str, str], None]
) -> Segments:
    """Every live segment of `raw` (deleted ones are skipped, as the SDK skips them)."""
    translator = _SegmentTranslator(raw, helpers, note_arrays)
    for key in list(translator.out.keys):
        if key not in translator._done:
            translator.translate(key)
    return translator.out
