"""Canonical serialization: defaults omitted, weights as percentages, and a lossless round trip."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fader_engine.model import Operator
from fader_engine.parse import parse_document
from fader_engine.serialize import to_json

ROOT = Path(__file__).resolve().parents[3]


def minimal_flag(**extra: Any) -> dict[str, Any]:
    return {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "offVariant": "off",
        "default": {"variant": "off"},
        **extra,
    }


def test_defaults_are_omitted() -> None:
    doc = {
        "format": "fader/v1",
        "bucketing": "v2",
        "segments": {},
        "metadata": {},
        "flags": {
            "x": minimal_flag(
                enabled=True,
                tags=[],
                rules=[
                    {
                        "clauses": [
                            {"attribute": "a", "op": "exists", "values": [], "negate": False}
                        ],
                        "variant": "on",
                    }
                ],
                prerequisites=[],
                metadata={},
            )
        },
    }
    assert to_json(parse_document(doc)) == {
        "format": "fader/v1",
        "flags": {
            "x": {
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "offVariant": "off",
                "rules": [{"clauses": [{"attribute": "a", "op": "exists"}], "variant": "on"}],
                "default": {"variant": "off"},
            }
        },
    }


def test_non_default_settings_are_written() -> None:
    doc = {
        "format": "fader/v1",
        "bucketing": "v3",
        "segments": {"s": {"included": ["b", "a"], "excluded": ["z"]}},
        "flags": {
            "x": minimal_flag(
                enabled=False,
                rules=[
                    {
                        "clauses": [{"op": "in_segment", "values": ["s"], "negate": True}],
                        "variant": "on",
                    }
                ],
            )
        },
    }
    out = to_json(parse_document(doc))
    assert out["bucketing"] == "v3"
    assert out["segments"] == {"s": {"included": ["a", "b"], "excluded": ["z"]}}
    assert out["flags"]["x"]["enabled"] is False
    assert out["flags"]["x"]["rules"][0]["clauses"] == [
        {"op": "in_segment", "values": ["s"], "negate": True}
    ]


def test_weights_are_written_as_percentages() -> None:
    split = {
        "by": "org.id",
        "weights": [
            {"variant": "on", "weight": 25.0},
            {"variant": "off", "weight": 74.999},
            {"variant": "on2", "weight": 0.001},
        ],
    }
    flag = minimal_flag(variants={"on": True, "off": False, "on2": True}, default={"split": split})
    out = to_json(parse_document({"format": "fader/v1", "flags": {"x": flag}}))
    written = out["flags"]["x"]["default"]["split"]
    assert written == {
        "by": "org.id",
        "weights": [
            {"variant": "on", "weight": 25},
            {"variant": "off", "weight": 74.999},
            {"variant": "on2", "weight": 0.001},
        ],
    }
    assert isinstance(written["weights"][0]["weight"], int)


def test_demo_document_round_trips() -> None:
    doc = parse_document(json.loads((ROOT / "examples" / "demo.json").read_text()))
    assert parse_document(json.loads(json.dumps(to_json(doc)))) == doc


# --- property: every valid document survives parse -> to_json -> parse unchanged -------------

KEYS = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,6}", fullmatch=True)
# no NUL: valid documents have none (docs/flag-format.md, "Limits")
TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=6)
NUMBERS = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)
SCALARS = TEXT | NUMBERS | st.booleans()
ATTRIBUTES = st.lists(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=3
).map(".".join)
VERSIONS = st.builds(
    lambda a, b, c, pre: f"v{a}.{b}.{c}{pre}",
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 20),
    st.sampled_from(["", "-rc.1", "-b"]),
)
INSTANTS = st.integers(0, 2_000_000_000) | st.sampled_from(
    ["2025-01-31T09:00:00Z", "2024-02-29T23:59:59.5+01:00"]
)
VALUES: dict[Operator, st.SearchStrategy[Any]] = {
    Operator.IN: SCALARS,
    Operator.STARTS_WITH: TEXT,
    Operator.ENDS_WITH: TEXT,
    Operator.CONTAINS: TEXT,
    Operator.MATCHES: st.sampled_from(["^a", "b+$", "[0-9]{3}", "(?i)beta"]),
    Operator.LT: NUMBERS,
    Operator.GTE: NUMBERS,
    Operator.SEMVER_LT: VERSIONS,
    Operator.SEMVER_EQ: VERSIONS,
    Operator.BEFORE: INSTANTS,
    Operator.AFTER: INSTANTS,
}
TYPED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "boolean": st.booleans(),
    "string": TEXT,
    "number": NUMBERS,
    "object": st.dictionaries(TEXT, SCALARS, max_size=2) | st.lists(SCALARS, max_size=2),
}


@st.composite
def clauses(draw: st.DrawFn, segments: list[str]) -> dict[str, Any]:
    choices = [*VALUES, Operator.EXISTS] + ([Operator.IN_SEGMENT] if segments else [])
    op = draw(st.sampled_from(choices))
    clause: dict[str, Any] = {"op": str(op)}
    if op is Operator.IN_SEGMENT:
        clause["values"] = draw(st.lists(st.sampled_from(segments), min_size=1, max_size=2))
    else:
        clause["attribute"] = draw(ATTRIBUTES)
        if op is not Operator.EXISTS:
            clause["values"] = draw(st.lists(VALUES[op], min_size=1, max_size=3))
    if draw(st.booleans()):
        clause["negate"] = draw(st.booleans())
    return clause


@st.composite
def splits(draw: st.DrawFn, variants: list[str]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(variants), min_size=1, unique=True))
    cuts = sorted(
        draw(st.lists(st.integers(0, 100_000), min_size=len(chosen) - 1, max_size=len(chosen) - 1))
    )
    bounds = [0, *cuts, 100_000]
    weights = [high - low for low, high in pairwise(bounds)]
    split: dict[str, Any] = {
        "weights": [
            {
                "variant": v,
                "weight": w // 1000 if w % 1000 == 0 and draw(st.booleans()) else w / 1000,
            }
            for v, w in zip(chosen, weights, strict=True)
        ]
    }
    if draw(st.booleans()):
        split["by"] = draw(ATTRIBUTES)
    return split


@st.composite
def serves(draw: st.DrawFn, variants: list[str]) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"variant": draw(st.sampled_from(variants))}
    return {"split": draw(splits(variants))}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    segment_keys = draw(st.lists(KEYS, max_size=3, unique=True))
    segments: dict[str, Any] = {}
    for index, key in enumerate(segment_keys):
        segment: dict[str, Any] = {}
        if draw(st.booleans()):
            segment["included"] = draw(st.lists(TEXT, max_size=3))
        if draw(st.booleans()):
            segment["excluded"] = draw(st.lists(TEXT, max_size=3))
        if draw(st.booleans()):
            earlier = segment_keys[:index]  # referencing only earlier segments keeps it acyclic
            segment["rules"] = [{"clauses": draw(st.lists(clauses(earlier), max_size=2))}]
        segments[key] = segment
    flags: dict[str, Any] = {}
    for key in draw(st.lists(KEYS, min_size=1, max_size=3, unique=True)):
        value_type = draw(st.sampled_from(sorted(TYPED_VALUES)))
        names = draw(st.lists(KEYS, min_size=1, max_size=3, unique=True))
        flag: dict[str, Any] = {
            "type": value_type,
            "variants": {name: draw(TYPED_VALUES[value_type]) for name in names},
            "offVariant": draw(st.sampled_from(names)),
            "default": draw(serves(names)),
        }
        if draw(st.booleans()):
            flag["enabled"] = draw(st.booleans())
        rules = []
        for index in range(draw(st.integers(0, 2))):
            rule = {
                "clauses": draw(st.lists(clauses(segment_keys), max_size=2)),
                **draw(serves(names)),
            }
            if draw(st.booleans()):
                rule["id"] = f"r{index}"
            rules.append(rule)
        if rules:
            flag["rules"] = rules
        wants_prerequisite = draw(st.booleans())
        if flags and wants_prerequisite:  # only earlier flags: no cycles
            target = draw(st.sampled_from(sorted(flags)))
            flag["prerequisites"] = [
                {
                    "flag": target,
                    "variants": [draw(st.sampled_from(sorted(flags[target]["variants"])))],
                }
            ]
        if draw(st.booleans()):
            flag["kind"] = draw(st.sampled_from(["release", "experiment", "ops", "permission"]))
            flag["tags"] = draw(st.lists(TEXT, max_size=2))
            flag["metadata"] = draw(st.dictionaries(TEXT, SCALARS, max_size=2))
            flag["name"] = draw(TEXT)
        flags[key] = flag
    doc: dict[str, Any] = {"format": "fader/v1", "flags": flags}
    if segments:
        doc["segments"] = segments
    if draw(st.booleans()):
        doc["bucketing"] = draw(st.sampled_from(["v2", "v3"]))
    return doc


@settings(max_examples=100, deadline=None)
@given(documents())
def test_round_trip_preserves_every_valid_document(data: dict[str, Any]) -> None:
    parsed = parse_document(data)
    written = to_json(parsed)
    assert parse_document(json.loads(json.dumps(written))) == parsed
    assert to_json(parse_document(written)) == written
