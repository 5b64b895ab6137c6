"""Parsing Fader's format: accepted documents, and rejected ones with the exact path and advice.

Each rejection case mutates a small valid document, so it shows the one thing that is wrong.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError, Problem
from fader_engine.model import TOTAL_WEIGHT, FlagKind, Operator, Serve, Split, WeightedVariant
from fader_engine.parse import parse_document
from fader_engine.result import ValueType

ROOT = Path(__file__).resolve().parents[3]


def base() -> dict[str, Any]:
    return {
        "format": "fader/v1",
        "segments": {"staff": {"included": ["u1"]}},
        "flags": {
            "x": {
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "offVariant": "off",
                "rules": [
                    {"clauses": [{"op": "in_segment", "values": ["staff"]}], "variant": "on"},
                    {
                        "id": "pro",
                        "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                        "variant": "on",
                    },
                ],
                "default": {"variant": "off"},
            },
            "y": {
                "type": "string",
                "variants": {"a": "A", "b": "B"},
                "offVariant": "a",
                "default": {
                    "split": {
                        "weights": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]
                    }
                },
            },
        },
    }


def problems_of(doc: Any) -> tuple[Problem, ...]:
    with pytest.raises(ConfigurationError) as info:
        parse_document(doc)
    return info.value.problems


def spec_example() -> Any:
    text = (ROOT / "docs" / "flag-format.md").read_text()
    match = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


def test_spec_example_is_accepted() -> None:
    doc = parse_document(spec_example())
    flag = doc.flags["new-checkout"]
    assert flag.type is ValueType.BOOLEAN
    assert flag.kind is FlagKind.RELEASE
    assert flag.default == Serve(
        split=Split((WeightedVariant("on", 25_000), WeightedVariant("off", 75_000)))
    )
    assert flag.rules[1].clauses[0].values == ("NL", "DE", "FR")
    assert flag.rules[0].clauses[0].attribute == ()
    assert doc.segments["internal-users"].included == frozenset({"user-42"})
    assert doc.bucketing is BucketingAlgorithm.V2


def test_demo_document_is_accepted() -> None:
    doc = parse_document(json.loads((ROOT / "examples" / "demo.json").read_text()))
    assert len(doc.flags) == 6
    assert not doc.flags["payments-kill-switch"].enabled
    split = doc.flags["checkout-button-copy"].default.split
    assert split is not None
    assert split.by == ("orgId",)
    assert [w.weight for w in split.weights] == [33_334, 33_333, 33_333]


def test_demo_contexts_are_json_objects() -> None:
    lines = (ROOT / "examples" / "demo-contexts.jsonl").read_text().splitlines()
    assert len(lines) >= 6
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_defaults_apply_when_optional_fields_are_absent() -> None:
    doc = parse_document(base())
    flag = doc.flags["x"]
    assert flag.enabled
    assert flag.prerequisites == ()
    assert flag.rules[1].id == "pro"
    assert flag.rules[1].clauses[0].negate is False
    assert doc.metadata == {}


def test_nested_attribute_becomes_path_segments() -> None:
    doc = base()
    doc["flags"]["x"]["rules"][1]["clauses"][0]["attribute"] = "address.country"
    assert parse_document(doc).flags["x"].rules[1].clauses[0].attribute == ("address", "country")


def test_weights_convert_exactly_to_thousandths() -> None:
    # 12.045 and 87.955 are not exact binary floats; their sum as floats is not exactly 100, but
    # their decimal spellings are exactly 12045 and 87955 thousandths.
    doc = base()
    doc["flags"]["y"]["default"]["split"]["weights"] = [
        {"variant": "a", "weight": 12.045},
        {"variant": "b", "weight": 87.955},
    ]
    split = parse_document(doc).flags["y"].default.split
    assert split is not None
    assert [w.weight for w in split.weights] == [12_045, 87_955]
    assert sum(w.weight for w in split.weights) == TOTAL_WEIGHT


def test_zero_weight_is_allowed() -> None:
    doc = base()
    doc["flags"]["y"]["default"]["split"]["weights"][0]["weight"] = 0
    doc["flags"]["y"]["default"]["split"]["weights"][1]["weight"] = 100.0
    split = parse_document(doc).flags["y"].default.split
    assert split is not None
    assert [w.weight for w in split.weights] == [0, TOTAL_WEIGHT]


def test_exists_clause_needs_no_values() -> None:
    doc = base()
    doc["flags"]["x"]["rules"][1]["clauses"] = [{"attribute": "email", "op": "exists"}]
    clause = parse_document(doc).flags["x"].rules[1].clauses[0]
    assert clause.op is Operator.EXISTS
    assert clause.values == ()


def test_undefined_prerequisite_flag_is_rejected() -> None:
    doc = base()
    doc["flags"]["x"]["prerequisites"] = [{"flag": "not-yet-created", "variants": ["on"]}]
    (problem,) = problems_of(doc)
    assert problem.path == "/flags/x/prerequisites/0/flag"
    assert "'not-yet-created' of flag 'x' is not defined" in problem.message


def test_every_problem_is_reported_at_once() -> None:
    doc = base()
    doc["flags"]["x"]["offVariant"] = "nope"
    doc["flags"]["y"]["type"] = "text"
    doc["segments"]["staff"]["included"] = "u1"
    paths = {p.path for p in problems_of(doc)}
    assert {"/flags/x/offVariant", "/flags/y/type", "/segments/staff/included"} <= paths


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting the value at a slash path (integers index lists)."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        del node[last]

    return apply


def _clause(clause: dict[str, Any]) -> Mutation:
    return _set("/flags/x/rules/1/clauses/0", clause)


def _weights(*pairs: tuple[str, Any]) -> Mutation:
    return _set("/flags/y/default/split/weights", [{"variant": v, "weight": w} for v, w in pairs])


def _flag(key: str, flag: dict[str, Any]) -> Mutation:
    return _set(f"/flags/{key}", flag)


def _mutual_prerequisites(doc: dict[str, Any]) -> None:
    doc["flags"]["x"]["prerequisites"] = [{"flag": "y", "variants": ["a"]}]
    doc["flags"]["y"]["prerequisites"] = [{"flag": "x", "variants": ["on"]}]


_BOOL_FLAG = {"type": "boolean", "variants": {"on": True, "off": False}, "offVariant": "off"}
C = "/flags/x/rules/1/clauses/0"

# (id, mutation, expected path, words the message must contain)
REJECTIONS: list[tuple[str, Mutation, str, tuple[str, ...]]] = [
    ("format-not-string", _set("/format", []), "/format", ("unknown format",)),
    ("unknown-format", _set("/format", "fader/v2"), "/format", ("unknown format", "fader/v1")),
    ("missing-flags", _delete("/flags"), "/flags", ("missing", "'flags'")),
    ("bad-bucketing", _set("/bucketing", "v4"), "/bucketing", ("'v4'", "'v2'", "'v3'")),
    ("unknown-top-field", _set("/flag", {}), "/flag", ("unknown field 'flag'", "'flags'")),
    ("bad-flag-key", _flag("New_Checkout", {}), "/flags/New_Checkout", ("key", "lowercase")),
    ("long-flag-key", _flag("k" * 129, {}), "/flags/" + "k" * 129, ("129", "128")),
    (
        "typo-field",
        _set("/flags/x/offvariant", "off"),
        "/flags/x/offvariant",
        ("unknown field 'offvariant'", "flag 'x'", "did you mean 'offVariant'"),
    ),
    ("missing-type", _delete("/flags/x/type"), "/flags/x/type", ("missing", "'type'")),
    ("unknown-type", _set("/flags/x/type", "bool"), "/flags/x/type", ("'bool'", "'boolean'")),
    (
        "bool-variant-string",
        _set("/flags/x/variants/on", "yes"),
        "/flags/x/variants/on",
        ("variant 'on' of boolean flag 'x'", '"yes"', "a string", "true or false"),
    ),
    (
        "number-variant-bool",
        _flag("n", {**_BOOL_FLAG, "type": "number", "default": {"variant": "on"}}),
        "/flags/n/variants/on",
        ("number flag", "a boolean"),
    ),
    ("no-variants", _set("/flags/x/variants", {}), "/flags/x/variants", ("no variants",)),
    (
        "off-variant-unknown",
        _set("/flags/x/offVariant", "of"),
        "/flags/x/offVariant",
        ("'of'", "not one of", "did you mean 'off'"),
    ),
    (
        "rule-serves-unknown",
        _set("/flags/x/rules/1/variant", "blue"),
        "/flags/x/rules/1/variant",
        ("rule 1 ('pro') of flag 'x'", "serves variant 'blue'", "('on', 'off')"),
    ),
    (
        "rule-both-serves",
        _set("/flags/x/rules/0/split", {"weights": []}),
        "/flags/x/rules/0",
        ("exactly one of 'variant' or 'split'", "both"),
    ),
    (
        "default-neither",
        _set("/flags/x/default", {}),
        "/flags/x/default",
        ("the default of flag 'x'", "exactly one", "neither"),
    ),
    (
        "rule-missing-clauses",
        _delete("/flags/x/rules/1/clauses"),
        "/flags/x/rules/1/clauses",
        ("missing", "'clauses'"),
    ),
    (
        "duplicate-rule-id",
        _set("/flags/x/rules/0/id", "pro"),
        "/flags/x/rules/1/id",
        ("'pro'", "twice"),
    ),
    (
        "disabled-not-bool",
        _set("/flags/x/enabled", "no"),
        "/flags/x/enabled",
        ("true or false", "a string"),
    ),
    (
        "unknown-kind",
        _set("/flags/x/kind", "feature"),
        "/flags/x/kind",
        ("'feature'", "'release'", "'permission'"),
    ),
    (
        "metadata-nested",
        _set("/flags/x/metadata", {"owner": {"team": "a"}}),
        "/flags/x/metadata/owner",
        ("strings, numbers or booleans", "an object"),
    ),
    ("tag-not-string", _set("/flags/x/tags", ["a", 3]), "/flags/x/tags/1", ("must be a string",)),
    (
        "weights-sum",
        _weights(("a", 50), ("b", 49.5)),
        "/flags/y/default/split/weights",
        ("flag 'y'", "sum to 99.5%", "exactly 100%"),
    ),
    (
        "weight-decimals",
        _weights(("a", 12.3456), ("b", 87.6544)),
        "/flags/y/default/split/weights/0/weight",
        ("weight 12.3456", "more than three decimals", "0.001%"),
    ),
    (
        "weight-negative",
        _weights(("a", -5), ("b", 105)),
        "/flags/y/default/split/weights/0/weight",
        ("negative",),
    ),
    (
        "weight-bool",
        _weights(("a", True), ("b", 99)),
        "/flags/y/default/split/weights/0/weight",
        ("not a number",),
    ),
    (
        "weight-duplicate-variant",
        _weights(("a", 50), ("a", 50)),
        "/flags/y/default/split/weights/1/variant",
        ("'a'", "more than once"),
    ),
    (
        "weight-unknown-variant",
        _weights(("a", 50), ("c", 50)),
        "/flags/y/default/split/weights/1/variant",
        ("'c'", "not one of the flag's variants"),
    ),
    (
        "split-by-empty-segment",
        _set("/flags/y/default/split/by", "org..id"),
        "/flags/y/default/split/by",
        ("'org..id'", "empty path segment"),
    ),
    (
        "unknown-op",
        _clause({"attribute": "plan", "op": "equals", "values": ["a"]}),
        C + "/op",
        ("unknown operator 'equals'", "rule 1"),
    ),
    (
        "op-typo",
        _clause({"attribute": "plan", "op": "start_with", "values": ["a"]}),
        C + "/op",
        ("did you mean 'starts_with'",),
    ),
    (
        "lt-string",
        _clause({"attribute": "age", "op": "lt", "values": ["18"]}),
        C + "/values/0",
        ("'lt'", "needs numbers", "a string"),
    ),
    (
        "lt-bool",
        _clause({"attribute": "age", "op": "gte", "values": [True]}),
        C + "/values/0",
        ("needs numbers", "a boolean"),
    ),
    (
        "semver-invalid",
        _clause({"attribute": "v", "op": "semver_gt", "values": ["1.x"]}),
        C + "/values/0",
        ("'1.x'", "semantic versions"),
    ),
    (
        "before-invalid",
        _clause({"attribute": "t", "op": "before", "values": ["2025-01-01"]}),
        C + "/values/0",
        ("RFC 3339", "Unix-seconds"),
    ),
    (
        "after-bool",
        _clause({"attribute": "t", "op": "after", "values": [False]}),
        C + "/values/0",
        ("RFC 3339",),
    ),
    (
        "regex-lookbehind",
        _clause({"attribute": "e", "op": "matches", "values": ["(?<=a)b"]}),
        C + "/values/0",
        ("invalid regular expression '(?<=a)b'", "RE2 does not support lookbehind"),
    ),
    (
        "regex-unbalanced",
        _clause({"attribute": "e", "op": "matches", "values": ["(a"]}),
        C + "/values/0",
        ("invalid regular expression", "missing )"),
    ),
    (
        "starts-with-number",
        _clause({"attribute": "e", "op": "starts_with", "values": [1]}),
        C + "/values/0",
        ("needs strings",),
    ),
    (
        "in-null",
        _clause({"attribute": "e", "op": "in", "values": [None]}),
        C + "/values/0",
        ("strings, numbers or booleans",),
    ),
    (
        "exists-with-values",
        _clause({"attribute": "e", "op": "exists", "values": ["x"]}),
        C + "/values",
        ("'exists' takes no values",),
    ),
    (
        "in-segment-attribute",
        _clause({"attribute": "e", "op": "in_segment", "values": ["staff"]}),
        C + "/attribute",
        ("'in_segment' takes no attribute",),
    ),
    (
        "in-segment-undefined",
        _clause({"op": "in_segment", "values": ["staf"]}),
        C + "/values/0",
        ("segment 'staf'", "not defined", "did you mean 'staff'"),
    ),
    (
        "missing-attribute",
        _clause({"op": "in", "values": ["a"]}),
        C + "/attribute",
        ("needs an 'attribute'",),
    ),
    ("missing-values", _clause({"attribute": "a", "op": "in"}), C + "/values", ("needs 'values'",)),
    (
        "empty-values",
        _clause({"attribute": "a", "op": "in", "values": []}),
        C + "/values",
        ("empty", "never match"),
    ),
    (
        "negate-string",
        _clause({"attribute": "a", "op": "in", "values": ["a"], "negate": "yes"}),
        C + "/negate",
        ("true or false",),
    ),
    (
        "prerequisite-cycle",
        _mutual_prerequisites,
        "/flags/x/prerequisites",
        ("prerequisite cycle: x -> y -> x",),
    ),
    (
        "self-prerequisite",
        _set("/flags/x/prerequisites", [{"flag": "x", "variants": ["on"]}]),
        "/flags/x/prerequisites",
        ("prerequisite cycle: x -> x",),
    ),
    (
        "prerequisite-variant",
        _set("/flags/x/prerequisites", [{"flag": "y", "variants": ["c"]}]),
        "/flags/x/prerequisites/0/variants/0",
        ("prerequisite 'y'", "variant 'c'", "('a', 'b')"),
    ),
    (
        "prerequisite-no-variants",
        _set("/flags/x/prerequisites", [{"flag": "y", "variants": []}]),
        "/flags/x/prerequisites/0/variants",
        ("non-empty",),
    ),
    (
        "segment-cycle",
        lambda d: d["segments"].update(
            a={"rules": [{"clauses": [{"op": "in_segment", "values": ["b"]}]}]},
            b={"rules": [{"clauses": [{"op": "in_segment", "values": ["a"]}]}]},
        ),
        "/segments/a/rules",
        ("segment cycle: a -> b -> a",),
    ),
    (
        "segment-unknown-field",
        _set("/segments/staff/include", ["u2"]),
        "/segments/staff/include",
        ("unknown field 'include'", "did you mean 'included'"),
    ),
    ("segment-bad-key", _set("/segments/Staff!", {}), "/segments/Staff!", ("segment key",)),
    ("document-metadata", _set("/metadata", "prod"), "/metadata", ("must be an object",)),
]


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [pytest.param(m, p, w, id=i) for i, m, p, w in REJECTIONS],
)
def test_bad_document_is_rejected_with_path_and_advice(
    mutate: Mutation, path: str, words: tuple[str, ...]
) -> None:
    doc = copy.deepcopy(base())
    mutate(doc)
    problems = problems_of(doc)
    at_path = [p.message for p in problems if p.path == path]
    assert at_path, f"no problem at {path}; got {[str(p) for p in problems]}"
    assert any(all(word in message for word in words) for message in at_path), at_path


def test_rejection_cases_are_distinct() -> None:
    ids = [case[0] for case in REJECTIONS]
    assert len(ids) == len(set(ids)) >= 25


def test_non_object_document_is_rejected_at_the_root() -> None:
    problems = problems_of([])
    assert problems == (Problem("", "the document must be a JSON object, not an array"),)


def test_path_tokens_are_escaped_as_json_pointer() -> None:
    doc = base()
    doc["flags"]["a/b"] = {}
    assert any(p.path == "/flags/a~1b" for p in problems_of(doc))


def test_parsed_model_does_not_share_input_objects() -> None:
    doc = base()
    doc["flags"]["o"] = {
        "type": "object",
        "variants": {"v": {"k": [1]}},
        "offVariant": "v",
        "default": {"variant": "v"},
    }
    parsed = parse_document(doc)
    doc["flags"]["o"]["variants"]["v"]["k"].append(2)
    assert parsed.flags["o"].variants["v"] == {"k": [1]}
