"""Parsing Fader's own document format (``fader/v1``) into the validated :mod:`model`.

This package of modules is the only code that knows the JSON shape (``docs/flag-format.md``):

* :mod:`fader_engine.parse` (here): the document, segments, and checks that need the whole
  document: prerequisites naming real flags and variants, and no cycles;
* :mod:`fader_engine.parse_flags`: one flag, its rules and splits;
* :mod:`fader_engine.parse_clauses`: clauses and the values each operator accepts;
* :mod:`fader_engine.parse_fields`: problem collection and typed field readers;
* :mod:`fader_engine.parse_limits`: how deep, how large and how long a document may be;
* :mod:`fader_engine.parse_patch`: a patched document, checking only what the patch can break.

Validation is complete before anything is built: :func:`parse_document` reports *every*
problem at once (a user fixing a document should not meet errors one at a time), and a
document that parses is one the compiler and the evaluator can trust without re-checking.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError
from fader_engine.model import FORMAT_ID, Document, Flag, Segment, SegmentRule
from fader_engine.parse_clauses import parse_clauses
from fader_engine.parse_fields import (
    Problems,
    check_key,
    child,
    json_type,
    quoted,
    read_list,
    read_object,
    read_string,
    read_strings,
    suggestion,
)
from fader_engine.parse_flags import parse_flag
from fader_engine.parse_limits import (
    MAX_RULES,
    MAX_SEGMENT_KEYS,
    check_bounds,
    check_count,
    check_value_depth,
)
from fader_engine.references import prerequisite_keys, segments_named_by

__all__ = [
    "check_prerequisites",
    "find_cycles",
    "parse_bounded",
    "parse_document",
    "parse_segment",
]

_DOCUMENT_FIELDS = ("format", "bucketing", "segments", "flags", "metadata")
_SEGMENT_FIELDS = ("description", "included", "excluded", "rules")
_SEGMENT_RULE_FIELDS = ("clauses",)
_ALGORITHMS = tuple(str(a) for a in BucketingAlgorithm)


def parse_document(data: Any) -> Document:
    """Validate a decoded JSON document completely and build its :class:`~model.Document`.

    Raises :class:`~fader_engine.errors.ConfigurationError` listing every problem found. A
    document over a nesting, string or size limit (:mod:`fader_engine.parse_limits`) is rejected
    with those problems alone, before anything else reads it.
    """
    bounds = check_bounds(data)
    if bounds:
        raise ConfigurationError(bounds)
    return parse_bounded(data)


def parse_bounded(data: Any) -> Document:
    """:func:`parse_document` without its first step, for a caller that has measured `data`
    (:func:`~fader_engine.parse_limits.measure`) and found it within bounds: a document is
    walked once, and :mod:`fader_engine.parse_patch` keeps the size that walk found."""
    problems = Problems()
    doc = read_object(
        data, "", "the document", problems, known=_DOCUMENT_FIELDS, required=("format", "flags")
    )
    if doc is None:
        raise ConfigurationError(problems.items)
    if "format" in doc and doc["format"] != FORMAT_ID:
        problems.add(
            "/format",
            f"unknown format {doc['format']!r}; this parser reads {FORMAT_ID!r} documents",
        )
    bucketing = BucketingAlgorithm.V2
    if "bucketing" in doc:
        if doc["bucketing"] in _ALGORITHMS:
            bucketing = BucketingAlgorithm(doc["bucketing"])
        else:
            problems.add(
                "/bucketing",
                f"bucketing {doc['bucketing']!r} is not one of "
                f"{quoted(_ALGORITHMS)}; omit it to use 'v2'",
            )
    metadata: Mapping[str, Any] = MappingProxyType({})
    if "metadata" in doc:
        if isinstance(doc["metadata"], Mapping):
            if check_value_depth(doc["metadata"], "/metadata", "the document's metadata", problems):
                metadata = MappingProxyType(copy.deepcopy(dict(doc["metadata"])))
        else:
            problems.add(
                "/metadata",
                f"'metadata' of the document must be an object, not {json_type(doc['metadata'])}",
            )

    raw_segments = _keyed(doc, "segments", "segment", problems)
    segment_keys = frozenset(raw_segments)
    segments: dict[str, Segment] = {}
    for key, value in raw_segments.items():
        segment = parse_segment(key, value, segment_keys, problems)
        if segment is not None:
            segments[key] = segment

    raw_flags = _keyed(doc, "flags", "flag", problems)
    flags: dict[str, Flag] = {}
    for key, value in raw_flags.items():
        flag = parse_flag(key, value, child("/flags", key), segment_keys, problems)
        if flag is not None:
            flags[key] = flag

    check_prerequisites(flags, frozenset(raw_flags), problems)
    for cycle in find_cycles({key: prerequisite_keys(flag) for key, flag in flags.items()}):
        problems.add(
            child(child("/flags", cycle[0]), "prerequisites"),
            f"prerequisite cycle: {' -> '.join(cycle)}; a flag cannot depend on itself",
        )
    for cycle in find_cycles({key: segments_named_by(seg) for key, seg in segments.items()}):
        problems.add(
            child(child("/segments", cycle[0]), "rules"),
            f"segment cycle: {' -> '.join(cycle)}; a segment cannot contain itself",
        )

    if problems.items:
        raise ConfigurationError(problems.items)
    return Document(
        flags=MappingProxyType(flags),
        segments=MappingProxyType(segments),
        bucketing=bucketing,
        metadata=metadata,
    )


def _keyed(doc: Mapping[str, Any], field: str, what: str, problems: Problems) -> dict[str, Any]:
    """The ``flags`` / ``segments`` object, keeping only entries whose key is valid."""
    raw = doc.get(field, {})
    if not isinstance(raw, Mapping):
        problems.add(
            f"/{field}",
            f"'{field}' must be an object of {what} key to {what}, not {json_type(raw)}",
        )
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = child(f"/{field}", key)
        if not isinstance(key, str):
            problems.add(path, f"{what} keys must be strings")
        elif check_key(key, path, what, problems):
            out[key] = value
    return out


def parse_segment(
    key: str, value: Any, segment_keys: Collection[str], problems: Problems
) -> Segment | None:
    path = child("/segments", key)
    where = f"segment {key!r}"
    before = len(problems.items)
    obj = read_object(value, path, where, problems, known=_SEGMENT_FIELDS)
    if obj is None:
        return None
    description = read_string(obj, "description", path, where, problems)
    included = _segment_keys(obj, "included", path, where, problems)
    excluded = _segment_keys(obj, "excluded", path, where, problems)
    rules: list[SegmentRule] = []
    rules_path = child(path, "rules")
    raw_rules = read_list(obj, "rules", path, where, problems) or []
    if not check_count(raw_rules, MAX_RULES, rules_path, where, "rules", problems):
        raw_rules = []
    for index, item in enumerate(raw_rules):
        rule_path = child(rules_path, index)
        rule_where = f"rule {index} of {where}"
        rule = read_object(
            item,
            rule_path,
            rule_where,
            problems,
            known=_SEGMENT_RULE_FIELDS,
            required=_SEGMENT_RULE_FIELDS,
        )
        if rule is not None:
            clauses = parse_clauses(rule, rule_path, rule_where, segment_keys, problems)
            rules.append(SegmentRule(clauses))
    if len(problems.items) > before:
        return None
    return Segment(
        key=key,
        included=frozenset(included),
        excluded=frozenset(excluded),
        rules=tuple(rules),
        description=description,
    )


def _segment_keys(
    obj: Mapping[str, Any], field: str, path: str, where: str, problems: Problems
) -> tuple[str, ...]:
    """A segment's `included` or `excluded` targeting keys, if there are not too many."""
    at = child(path, field)
    if not check_count(
        obj.get(field), MAX_SEGMENT_KEYS, at, f"'{field}' of {where}", "targeting keys", problems
    ):
        return ()
    return read_strings(obj, field, path, where, problems)


def check_prerequisites(
    flags: Mapping[str, Flag],
    declared: Collection[str],
    problems: Problems,
    keys: Collection[str] | None = None,
) -> None:
    """Prerequisites name flags of this document, and only variants those flags have: those of
    every flag, or of the flags `keys` only (after a patch, the flags that may have broken).

    A document is a whole environment, so a prerequisite on a flag it lacks is a mistake (a
    typo, or a flag deleted while others still depend on it); accepting it would silently turn
    the dependent flag off for everyone.
    """
    checked = flags.items() if keys is None else ((k, flags[k]) for k in keys if k in flags)
    for key, flag in checked:
        for index, prerequisite in enumerate(flag.prerequisites):
            path = child(child(child("/flags", key), "prerequisites"), index)
            target = flags.get(prerequisite.flag)
            if target is None:
                if prerequisite.flag not in declared:  # an invalid one reports its own problems
                    problems.add(
                        child(path, "flag"),
                        f"prerequisite {prerequisite.flag!r} of flag {key!r} is not defined in "
                        "this document; define that flag or remove the prerequisite"
                        + suggestion(prerequisite.flag, sorted(declared)),
                    )
                continue
            for v_index, variant in enumerate(prerequisite.variants):
                if variant not in target.variants:
                    problems.add(
                        child(child(path, "variants"), v_index),
                        f"prerequisite {prerequisite.flag!r} of flag {key!r} names "
                        f"variant {variant!r}, which is not one of its variants "
                        f"({quoted(target.variants)})",
                    )


def find_cycles(graph: Mapping[str, Collection[str]]) -> Iterator[list[str]]:
    """Each elementary cycle reachable by depth-first search, once, as ``[a, b, a]``.

    Iterative colouring DFS: a back edge to a node still on the stack closes a cycle. Nodes
    outside `graph` (undefined or invalid references) are reported elsewhere and skipped.
    """
    done: set[str] = set()
    seen_cycles: set[frozenset[str]] = set()
    for start in sorted(graph):
        if start in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        on_stack = {start}
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                on_stack.discard(node)
                done.add(node)
            elif nxt in on_stack:
                names = [name for name, _ in stack]
                cycle = [*names[names.index(nxt) :], nxt]
                if frozenset(cycle) not in seen_cycles:
                    seen_cycles.add(frozenset(cycle))
                    yield cycle
            elif nxt in graph and nxt not in done:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                on_stack.add(nxt)
