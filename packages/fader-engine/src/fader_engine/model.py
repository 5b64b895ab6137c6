"""Fader's own configuration model: validated, immutable values.

Instances are produced by :mod:`fader_engine.parse` (the only code that knows the JSON shape)
and consumed by :mod:`fader_engine.compile` and :mod:`fader_engine.serialize`. Anything held
here has passed validation: variant names resolve, weights sum to 100%, regular expressions
compile, prerequisites and segment references are acyclic. Downstream code may rely on that and
does not re-check. The format is documented in ``docs/flag-format.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.result import ValueType

FORMAT_ID = "fader/v1"
PERCENT_SCALE = 1000
"""Weights are stored in thousandths of a percent: 0.001% granularity, 100% = 100_000."""
TOTAL_WEIGHT = 100 * PERCENT_SCALE


class FlagKind(StrEnum):
    RELEASE = "release"
    EXPERIMENT = "experiment"
    OPS = "ops"
    PERMISSION = "permission"


class Operator(StrEnum):
    """Clause operators.

    What each means on a value is one table in :mod:`fader_engine.operators`; ``exists`` and
    ``in_segment``, which are about the clause, are defined in
    :func:`fader_engine.codegen.clause_expression`.
    """

    IN = "in"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    MATCHES = "matches"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    SEMVER_EQ = "semver_eq"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    BEFORE = "before"
    AFTER = "after"
    IN_SEGMENT = "in_segment"
    EXISTS = "exists"
    IP_IN = "ip_in"
    UNLEASH_ROLLOUT = "unleash_rollout"


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Clause:
    """One condition. `attribute` is a path into the context (empty for `in_segment`)."""

    attribute: tuple[str, ...]
    op: Operator
    values: tuple[Any, ...]
    negate: bool = False

    @property
    def attribute_name(self) -> str:
        return ".".join(self.attribute)


@dataclass(frozen=True, slots=True)
class WeightedVariant:
    variant: str
    weight: int
    """Thousandths of a percent (see :data:`PERCENT_SCALE`)."""


@dataclass(frozen=True, slots=True)
class LaunchDarklyBucketing:
    """LaunchDarkly's rollout bucketing, so users imported from LaunchDarkly keep their bucket.

    `prefix` is what LaunchDarkly hashes before the value: the rollout's seed, or
    ``flag_key.salt``. `context_kind` is the kind whose attribute is bucketed; a context of
    another kind gets the split's first variant, as LaunchDarkly serves it.
    (:mod:`fader_engine.vendor_bucketing`; docs/bucketing.md.)
    """

    prefix: str
    context_kind: str = "user"


@dataclass(frozen=True, slots=True)
class UnleashBucketing:
    """Unleash's variant bucketing: murmur3 of ``group:value`` with `seed`, modulo `modulus`.

    `fallback` lists the attributes tried, in order, when the split's `by` attribute is absent
    (Unleash's default stickiness: user id, then session id, then remote address).
    """

    group: str
    seed: int = 0
    modulus: int = 100
    fallback: tuple[tuple[str, ...], ...] = ()


VendorBucketing = LaunchDarklyBucketing | UnleashBucketing


@dataclass(frozen=True, slots=True)
class Split:
    """A percentage rollout; `by` is the seed attribute path, or empty for the targeting key.

    `bucketing` is ``None`` for Fader's own (flagd-compatible) bucketing, the document's
    algorithm; a vendor's bucketing keeps every user imported from that vendor in their bucket.
    """

    weights: tuple[WeightedVariant, ...]
    by: tuple[str, ...] = ()
    bucketing: VendorBucketing | None = None


@dataclass(frozen=True, slots=True)
class Serve:
    """What a rule or the default serves: exactly one of a variant or a split."""

    variant: str | None = None
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    clauses: tuple[Clause, ...]
    serve: Serve
    id: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Prerequisite:
    flag: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Flag:
    key: str
    type: ValueType
    variants: Mapping[str, Any]
    off_variant: str
    default: Serve
    enabled: bool = True
    rules: tuple[Rule, ...] = ()
    prerequisites: tuple[Prerequisite, ...] = ()
    name: str | None = None
    description: str | None = None
    kind: FlagKind | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class SegmentRule:
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    included: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    rules: tuple[SegmentRule, ...] = ()
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """One environment's configuration."""

    flags: Mapping[str, Flag]
    segments: Mapping[str, Segment] = field(default_factory=lambda: _EMPTY)
    bucketing: BucketingAlgorithm = BucketingAlgorithm.V2
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
