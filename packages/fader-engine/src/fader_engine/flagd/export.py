"""Export Fader's format as a flagd flag-definition document.

An existing flagd deployment (or any flagd in-process provider) can then use Fader as its flag
source, and put every user in the same variant as Fader does: splits become ``fractional``
with weights in thousandths of a percent (so the bucket arithmetic is identical), clauses become
JsonLogic, segments and prerequisites are inlined (flagd has neither).

What is preserved is the **variant and value** of every evaluation. Reasons map as flagd can
express them: Fader's ``SPLIT`` and a failed prerequisite become ``TARGETING_MATCH``, and a
disabled flag becomes an enabled flag that statically serves its off variant (``STATIC``),
because flagd's ``DISABLED`` state would serve the caller's code default instead.

Known differences, all on inputs Fader rejects or treats as errors: when a split's seed is
missing Fader answers ``TARGETING_KEY_MISSING`` while flagd buckets the empty seed or serves the
default; comparison operators on attributes of the wrong type (JsonLogic coerces ``"5" < 10``;
Fader does not match). ``matches`` (regular expressions), ``before``/``after`` (instants),
``ip_in`` and ``unleash_rollout`` have no flagd operator and are refused with a precise
problem, as are splits with a vendor's bucketing (docs/bucketing.md).

Spec: https://flagd.dev/reference/flag-definitions/
"""

from __future__ import annotations

from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError, Problem
from fader_engine.model import (
    Clause,
    Document,
    Flag,
    LaunchDarklyBucketing,
    Operator,
    Serve,
    VendorBucketing,
)

FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"

_COMPARISONS = {Operator.LT: "<", Operator.LTE: "<=", Operator.GT: ">", Operator.GTE: ">="}
_SEMVER = {
    Operator.SEMVER_EQ: "=",
    Operator.SEMVER_LT: "<",
    Operator.SEMVER_LTE: "<=",
    Operator.SEMVER_GT: ">",
    Operator.SEMVER_GTE: ">=",
}
_NULL = None


class ExportError(ConfigurationError):
    """The document uses something flagd cannot express; `.problems` names each place."""


def _any(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else {"or": terms}


def _all(terms: list[Any]) -> Any:
    if not terms:
        return True
    return terms[0] if len(terms) == 1 else {"and": terms}


def _vendor(bucketing: VendorBucketing) -> str:
    return "LaunchDarkly" if isinstance(bucketing, LaunchDarklyBucketing) else "Unleash"


class _Exporter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def clause(self, clause: Clause, path: str) -> Any:
        op = clause.op
        if op is Operator.IN_SEGMENT:
            member = _any([self.segment(key) for key in clause.values])
            return {"!": member} if clause.negate else member
        var = {"var": clause.attribute_name}
        present = {"!=": [var, _NULL]}
        if op is Operator.EXISTS:
            return {"==": [var, _NULL]} if clause.negate else present
        test = self.test(clause, var, path)
        # Fader: a missing attribute never matches, negated or not.
        return {"and": [present, {"!": test}]} if clause.negate else {"and": [present, test]}

    def test(self, clause: Clause, var: dict[str, str], path: str) -> Any:
        op, values = clause.op, list(clause.values)
        if op is Operator.IN:
            # Scalars by membership; a list attribute matches when any element does. `merge`
            # makes a scalar a one-element list: the JavaScript evaluators (json-logic-engine)
            # throw on `some` over a string, which failed the whole flag.
            listed = {"some": [{"merge": [var]}, {"in": [{"var": ""}, values]}]}
            return {"or": [{"in": [var, values]}, listed]}
        if op is Operator.STARTS_WITH:
            return _any([{"starts_with": [var, v]} for v in values])
        if op is Operator.ENDS_WITH:
            return _any([{"ends_with": [var, v]} for v in values])
        if op is Operator.CONTAINS:
            return _any([{"in": [v, var]} for v in values])
        if op in _COMPARISONS:
            return _any([{_COMPARISONS[op]: [var, v]} for v in values])
        if op in _SEMVER:
            return _any([{"sem_ver": [var, _SEMVER[op], v]} for v in values])
        self.problems.append(
            Problem(
                f"{path}/op",
                f"operator {op.value!r} has no flagd equivalent; "
                "rewrite the clause with another operator to export it",
            )
        )
        return False

    def segment(self, key: str) -> Any:
        segment = self.doc.segments[key]
        target = {"var": "targetingKey"}
        rules = [
            _all(
                [
                    self.clause(c, f"/segments/{key}/rules/{i}/clauses/{j}")
                    for j, c in enumerate(rule.clauses)
                ]
            )
            for i, rule in enumerate(segment.rules)
        ]
        matched: Any = _any(rules) if rules else False
        if segment.excluded:
            matched = {"and": [{"!": {"in": [target, sorted(segment.excluded)]}}, matched]}
        if segment.included:
            matched = {"or": [{"in": [target, sorted(segment.included)]}, matched]}
        return matched

    def serve(self, flag: Flag, serve: Serve, path: str, inline: bool) -> Any:
        if serve.split is None:
            return serve.variant
        if serve.split.bucketing is not None:
            self.problems.append(
                Problem(
                    f"{path}/split/bucketing",
                    f"flag {flag.key!r} splits with {_vendor(serve.split.bucketing)}'s "
                    "bucketing, which flagd's fractional hash cannot reproduce; keep the flag "
                    "out of flagd exports or re-split it with Fader's own bucketing",
                )
            )
            return _NULL
        buckets = [[w.variant, w.weight] for w in serve.split.weights]
        if serve.split.by:
            # A literal flag key, not $flagd.flagKey: the expression may be inlined into
            # another flag as a prerequisite and must still hash as this flag does.
            return {
                "fractional": [{"cat": [flag.key, {"var": ".".join(serve.split.by)}]}, *buckets]
            }
        if not inline:
            return {"fractional": buckets}  # shorthand seed: flag key + targeting key
        if self.doc.bucketing is BucketingAlgorithm.V3:
            self.problems.append(
                Problem(
                    f"{path}/split",
                    f"flag {flag.key!r} is a prerequisite and splits by targeting "
                    "key under v3 bucketing, which flagd cannot express inside another flag; "
                    "split it 'by' an attribute instead",
                )
            )
            return _NULL
        return {"fractional": [{"cat": [flag.key, {"var": "targetingKey"}]}, *buckets]}

    def decision(self, flag: Flag, inline: bool) -> Any:
        """JsonLogic yielding the flag's variant name, or null for its flagd defaultVariant."""
        base = f"/flags/{flag.key}"
        branches: list[Any] = []
        if flag.prerequisites:
            failed = [
                {"!": {"in": [self.variant_of(p.flag), list(p.variants)]}}
                for p in flag.prerequisites
            ]
            branches += [_any(failed), flag.off_variant]
        for i, rule in enumerate(flag.rules):
            condition = _all(
                [
                    self.clause(c, f"{base}/rules/{i}/clauses/{j}")
                    for j, c in enumerate(rule.clauses)
                ]
            )
            branches += [condition, self.serve(flag, rule.serve, f"{base}/rules/{i}", inline)]
        default = flag.default
        if inline or default.split is not None:
            branches.append(self.serve(flag, default, f"{base}/default", inline))
        if not branches:
            return _NULL
        if len(branches) == 1:
            return branches[0]
        return {"if": branches}

    def variant_of(self, key: str) -> Any:
        """An expression evaluating prerequisite `key` to its variant name for the context."""
        flag = self.doc.flags[key]
        if not flag.enabled:
            return _NULL  # a disabled prerequisite always fails (never in the allowed list)
        return self.decision(flag, inline=True)

    def flag(self, flag: Flag) -> dict[str, Any]:
        out: dict[str, Any] = {"state": "ENABLED", "variants": dict(flag.variants)}
        if not flag.enabled:
            out["defaultVariant"] = flag.off_variant
        else:
            default = flag.default
            out["defaultVariant"] = (
                default.variant if default.variant is not None else flag.off_variant
            )
            targeting = self.decision(flag, inline=False)
            if targeting is not _NULL:
                out["targeting"] = targeting
        if flag.metadata:
            out["metadata"] = dict(flag.metadata)
        return out


def to_flagd(doc: Document) -> dict[str, Any]:
    """The flagd flag-definition document equivalent to `doc` (see the module docstring).

    Raises :class:`ExportError` listing every construct flagd cannot express.
    """
    exporter = _Exporter(doc)
    flags = {key: exporter.flag(flag) for key, flag in doc.flags.items()}
    if exporter.problems:
        raise ExportError(exporter.problems)
    out: dict[str, Any] = {"$schema": FLAGD_SCHEMA, "flags": flags}
    if doc.metadata:
        scalar = {k: v for k, v in doc.metadata.items() if isinstance(v, str | int | float | bool)}
        if scalar:
            out["metadata"] = scalar
    return out
