"""Rules and targets as Fader rules: clause formulas, the context-kind guard, helper segments.

Every LaunchDarkly clause on an attribute reads the context of *its* kind (``contextKind``,
default ``user``) and fails when the context is of another kind, negated or not. With one
context per evaluation (the convention of docs/migration-launchdarkly.md) a rule therefore
needs its context to be of the one kind its attribute clauses name (two different kinds: the
rule never matches). Fader has no kinds, so the guard is a clause on the ``kind`` attribute;
for ``user``, which a context without ``kind`` also is, it is membership of a helper segment
matching "kind is user or absent" (:meth:`Helpers.kind_user`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fader_engine.parse_fields import KEY_PATTERN, MAX_KEY_LENGTH
from fader_server.migration.launchdarkly.clauses import (
    DEFAULT_KIND,
    LIST_OPERATORS,
    MAX_VALUES,
    Formula,
    SegmentLookup,
    UntranslatableError,
    clause,
    conjoin,
    never,
    translate_clause,
)
from fader_server.migration.model import JSON

KIND_USER_SEGMENT = "ld-kind-user"


def fader_key(key: str, taken: Iterable[str]) -> str:
    """`key` if it is a valid Fader key not yet `taken`, else a sanitised, unique variant of it.

    Lower case, characters outside ``[a-z0-9._-]`` as ``-``, a leading ``x`` when the key does
    not start with a letter or digit, cut to Fader's maximum length, ``-2``, ``-3``... on a
    clash.
    """
    used = set(taken)
    if KEY_PATTERN.fullmatch(key) and len(key) <= MAX_KEY_LENGTH and key not in used:
        return key
    base = "".join(
        c if c in "abcdefghijklmnopqrstuvwxyz0123456789._-" else "-" for c in key.lower()
    )
    if not base or not base[0].isalnum():
        base = "x" + base
    base = base[:MAX_KEY_LENGTH]
    candidate, n = base, 1
    while candidate in used:
        n += 1
        suffix = f"-{n}"
        candidate = base[: MAX_KEY_LENGTH - len(suffix)] + suffix
    return candidate


class Helpers:
    """Segments the translation adds for itself, under keys no imported segment has."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.segments: dict[str, JSON] = {}
        self._kind_user: str | None = None

    def add(self, base: str, segment: JSON) -> str:
        key = fader_key(base, self.taken)
        self.taken.add(key)
        self.segments[key] = segment
        return key

    def kind_user(self) -> str:
        """The segment of contexts whose kind is ``user`` (a context without ``kind`` is one)."""
        if self._kind_user is None:
            self._kind_user = self.add(
                KIND_USER_SEGMENT,
                {
                    "description": "LaunchDarkly import: contexts of kind 'user' (no 'kind' "
                    "attribute, or 'user')",
                    "rules": [
                        {"clauses": [clause("kind", "in", [DEFAULT_KIND])]},
                        {"clauses": [clause("kind", "exists", negate=True)]},
                    ],
                },
            )
        return self._kind_user

    def kind_is(self, kind: str) -> Formula:
        """The context is of `kind`."""
        if kind == DEFAULT_KIND:
            return [[{"op": "in_segment", "values": [self.kind_user()]}]]
        return [[clause("kind", "in", [kind])]]

    def kind_is_not(self, kind: str) -> Formula:
        """The context is of another kind than `kind`."""
        if kind == DEFAULT_KIND:
            return [[{"op": "in_segment", "values": [self.kind_user()], "negate": True}]]
        return [[clause("kind", "in", [kind], True)], [clause("kind", "exists", negate=True)]]


def rule_formula(
    clauses: Any,
    where: str,
    segments: SegmentLookup,
    helpers: Helpers,
    array_notes: Callable[[str, str], None],
) -> Formula:
    """All clauses of a rule, with the kind guard (:data:`never` when kinds conflict)."""
    if not isinstance(clauses, list):
        raise UntranslatableError(where, "'clauses' must be a list")
    translations = [
        translate_clause(raw, f"{where}, clause {i + 1}", segments) for i, raw in enumerate(clauses)
    ]
    for t in translations:
        if t.attribute is not None and t.op not in LIST_OPERATORS:
            array_notes(t.attribute, t.op)
    kinds = {t.kind for t in translations if t.kind is not None}
    if len(kinds) > 1:
        return never()  # one context has one kind: clauses of two kinds never all pass
    formulas = [t.formula for t in translations]
    if kinds:
        formulas.append(helpers.kind_is(kinds.pop()))
    return conjoin(formulas, where)


def key_rules(keys: list[str], kind: str, helpers: Helpers) -> list[list[JSON]]:
    """Clause lists matching a context of `kind` whose key is one of `keys`."""
    return [
        [clause("targetingKey", "in", keys[i : i + MAX_VALUES]), *alternative]
        for i in range(0, len(keys), MAX_VALUES)
        for alternative in helpers.kind_is(kind)
    ]


def string_list(raw: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = raw.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UntranslatableError(where, f"'{name}' must be a list of strings")
    return list(dict.fromkeys(value))
