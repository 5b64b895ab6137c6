"""Writing a :class:`~model.Document` back as canonical Fader-format JSON (``fader/v1``).

Canonical means: fields in the order ``docs/flag-format.md`` lists them, every field holding
its default omitted (``enabled: true``, ``negate: false``, ``bucketing: "v2"``, empty lists and
objects), segment target lists sorted, and weights written as percentages (``25``, ``12.345``).
Two equal documents therefore serialize identically, which is what the server's diffs and
version hashes rely on, and ``parse_document(to_json(doc)) == doc`` for every parsed `doc`.
"""

from __future__ import annotations

import copy
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.model import (
    FORMAT_ID,
    Clause,
    Document,
    Flag,
    LaunchDarklyBucketing,
    Rule,
    Segment,
    Serve,
    Split,
    VendorBucketing,
)
from fader_engine.percent import format_percent

__all__ = ["to_json"]


def to_json(doc: Document) -> dict[str, Any]:
    """The canonical JSON object for `doc` (plain dicts and lists, ready for ``json.dumps``)."""
    out: dict[str, Any] = {"format": FORMAT_ID}
    if doc.bucketing is not BucketingAlgorithm.V2:
        out["bucketing"] = str(doc.bucketing)
    if doc.segments:
        out["segments"] = {key: _segment(seg) for key, seg in doc.segments.items()}
    out["flags"] = {key: _flag(flag) for key, flag in doc.flags.items()}
    if doc.metadata:
        out["metadata"] = copy.deepcopy(dict(doc.metadata))
    return out


def _flag(flag: Flag) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if flag.name is not None:
        out["name"] = flag.name
    if flag.description is not None:
        out["description"] = flag.description
    if flag.kind is not None:
        out["kind"] = str(flag.kind)
    if flag.tags:
        out["tags"] = list(flag.tags)
    out["type"] = str(flag.type)
    out["variants"] = copy.deepcopy(dict(flag.variants))
    if not flag.enabled:
        out["enabled"] = False
    out["offVariant"] = flag.off_variant
    if flag.prerequisites:
        out["prerequisites"] = [
            {"flag": p.flag, "variants": list(p.variants)} for p in flag.prerequisites
        ]
    if flag.rules:
        out["rules"] = [_rule(rule) for rule in flag.rules]
    out["default"] = _serve(flag.default)
    if flag.metadata:
        out["metadata"] = dict(flag.metadata)
    return out


def _rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.id is not None:
        out["id"] = rule.id
    if rule.description is not None:
        out["description"] = rule.description
    out["clauses"] = [_clause(clause) for clause in rule.clauses]
    out.update(_serve(rule.serve))
    return out


def _serve(serve: Serve) -> dict[str, Any]:
    if serve.split is not None:
        return {"split": _split(serve.split)}
    return {"variant": serve.variant}


def _split(split: Split) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if split.by:
        out["by"] = ".".join(split.by)
    out["weights"] = [
        {"variant": w.variant, "weight": format_percent(w.weight)} for w in split.weights
    ]
    if split.bucketing is not None:
        out["bucketing"] = _bucketing(split.bucketing)
    return out


def _bucketing(bucketing: VendorBucketing) -> dict[str, Any]:
    if isinstance(bucketing, LaunchDarklyBucketing):
        out: dict[str, Any] = {"algorithm": "launchdarkly", "prefix": bucketing.prefix}
        if bucketing.context_kind != "user":
            out["contextKind"] = bucketing.context_kind
        return out
    out = {"algorithm": "unleash", "group": bucketing.group}
    if bucketing.seed:
        out["seed"] = bucketing.seed
    if bucketing.modulus != 100:
        out["modulus"] = bucketing.modulus
    if bucketing.fallback:
        out["fallback"] = [".".join(path) for path in bucketing.fallback]
    return out


def _clause(clause: Clause) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if clause.attribute:
        out["attribute"] = clause.attribute_name
    out["op"] = str(clause.op)
    if clause.values:
        out["values"] = list(clause.values)
    if clause.negate:
        out["negate"] = True
    return out


def _segment(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if segment.description is not None:
        out["description"] = segment.description
    if segment.included:
        out["included"] = sorted(segment.included)
    if segment.excluded:
        out["excluded"] = sorted(segment.excluded)
    if segment.rules:
        out["rules"] = [
            {"clauses": [_clause(clause) for clause in rule.clauses]} for rule in segment.rules
        ]
    return out
