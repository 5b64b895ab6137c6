"""flagd documents imported into Fader's format evaluate to the same variants."""

from __future__ import annotations

import random
from typing import Any

import pytest

import fader_engine
from fader_engine import BucketingAlgorithm, ErrorCode, Reason
from fader_engine.flagd import load_flagd
from fader_engine.flagd.export import to_flagd
from fader_engine.flagd.importer import ImportRefusedError, flagd_to_fader
from fader_engine.parse import parse_document

FLAGD: dict[str, Any] = {
    "$evaluators": {
        "internal": {"ends_with": [{"var": "email"}, "@example.com"]},
    },
    "flags": {
        "release": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "if": [
                    {"or": [{"$ref": "internal"}, {"in": [{"var": "country"}, ["NL", "DE"]]}]},
                    "on",
                    {"and": [{"==": [{"var": "plan"}, "pro"]}, {">=": [{"var": "seats"}, 10]}]},
                    "on",
                    {"fractional": [["on", 25], ["off", 75]]},
                ]
            },
        },
        "copy": {
            "state": "ENABLED",
            "variants": {"a": "Buy", "b": "Order", "c": "Get"},
            "defaultVariant": "a",
            "targeting": {
                "if": [
                    {"sem_ver": [{"var": "appVersion"}, ">=", "2.0.0"]},
                    {
                        "fractional": [
                            {"cat": [{"var": "$flagd.flagKey"}, {"var": "orgId"}]},
                            ["a", 50],
                            ["b", 30],
                            ["c", 20],
                        ]
                    },
                    {"starts_with": [{"var": "email"}, "admin"]},
                    "c",
                    {"in": ["+test", {"var": "email"}]},
                    "b",
                ]
            },
        },
        "limits": {
            "state": "ENABLED",
            "variants": {"small": 10, "large": 100},
            "defaultVariant": "small",
            "targeting": {"if": [{"<": [18, {"var": "age"}]}, "large"]},
            "metadata": {"owner": "search"},
        },
        "static": {
            "state": "ENABLED",
            "variants": {"x": {"k": 1}, "y": {"k": 2}},
            "defaultVariant": "y",
        },
    },
}


def contexts(count: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    out = []
    for i in range(count):
        ctx: dict[str, Any] = {"targetingKey": f"user-{i}", "orgId": f"org-{rng.randrange(99)}"}
        ctx["email"] = rng.choice(["a@example.com", "admin@corp.io", "b+test@x.io", "c@x.io"])
        ctx["country"] = rng.choice(["NL", "US", "DE", "JP"])
        ctx["plan"] = rng.choice(["pro", "free"])
        ctx["seats"] = rng.choice([1, 10, 50])
        ctx["appVersion"] = rng.choice(["1.0.0", "2.0.0", "2.5.1"])
        if rng.random() < 0.7:
            ctx["age"] = rng.choice([12, 18, 19, 40])
        out.append(ctx)
    return out


def same_in_both(flagd_doc: dict[str, Any], bucketing: str) -> int:
    theirs = load_flagd(flagd_doc, bucketing=bucketing)
    ours = fader_engine.load(flagd_to_fader(flagd_doc, bucketing=bucketing))
    checked = 0
    for ctx in contexts(2000):
        for key in theirs:
            a, b = theirs.evaluate(key, ctx), ours.evaluate(key, ctx)
            assert (a.value, a.variant) == (b.value, b.variant), (key, ctx)
            assert a.reason == (Reason.TARGETING_MATCH if b.reason is Reason.SPLIT else b.reason)
            assert dict(a.flag_metadata) == dict(b.flag_metadata)
            checked += 1
    return checked


@pytest.mark.parametrize("bucketing", ["v2", "v3"])
def test_imported_document_evaluates_like_flagd(bucketing: str) -> None:
    assert same_in_both(FLAGD, bucketing) == 2000 * 4


def test_import_then_export_round_trips_evaluations() -> None:
    imported = parse_document(flagd_to_fader(FLAGD))
    again = load_flagd(to_flagd(imported), bucketing=BucketingAlgorithm.V2)
    original = load_flagd(FLAGD)
    for ctx in contexts(500):
        for key in original:
            assert original.evaluate(key, ctx).variant == again.evaluate(key, ctx).variant


@pytest.mark.parametrize(
    ("targeting", "path", "words"),
    [
        ({"if": [{"!": {"var": "beta"}}, "on"]}, "/flags/f/targeting/if/0", "no exact Fader"),
        ({"fractional": [["on", 1], ["off", 2]]}, "/flags/f/targeting", "not exact"),
        ({"fractional": [{"var": "orgId"}, ["on", 1]]}, "/flags/f/targeting/fractional/0", "seed"),
        ({"if": [{"==": [1, 1]}, "on"]}, "/flags/f/targeting/if/0", "no exact Fader"),
        ({"$ref": "missing"}, "/flags/f/targeting", "names no entry"),
        ({"if": [{"and": [{"or": [True, True]}]}, "on"]}, "/flags/f/targeting/if/0/and/0", "'or'"),
    ],
)
def test_untranslatable_targeting_is_refused_with_its_place(
    targeting: Any, path: str, words: str
) -> None:
    doc = {
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": targeting,
            }
        }
    }
    with pytest.raises(ImportRefusedError) as caught:
        flagd_to_fader(doc)
    (problem,) = caught.value.problems
    assert problem.path == path
    assert words in problem.message


def test_flag_without_default_variant_is_refused() -> None:
    doc = {"flags": {"f": {"state": "ENABLED", "variants": {"a": "A"}, "defaultVariant": None}}}
    with pytest.raises(ImportRefusedError, match="default variant"):
        flagd_to_fader(doc)


def test_disabled_flag_imports_as_disabled_serving_its_default_variant() -> None:
    doc = {"flags": {"f": {"state": "DISABLED", "variants": {"a": "A"}, "defaultVariant": "a"}}}
    result = fader_engine.load(flagd_to_fader(doc)).evaluate("f", {})
    assert (result.value, result.reason) == ("A", Reason.DISABLED)


def test_missing_split_seed_is_an_error_after_import() -> None:
    engine = fader_engine.load(flagd_to_fader(FLAGD))
    result = engine.evaluate("copy", {"appVersion": "2.0.0"})
    assert result.error_code is ErrorCode.TARGETING_KEY_MISSING


def test_fader_export_imports_back_to_the_same_rules() -> None:
    def clause(attribute: str, op: str, *values: Any, negate: bool = False) -> dict[str, Any]:
        return {"attribute": attribute, "op": op, "values": list(values), "negate": negate}

    original = {
        "format": "fader/v1",
        "flags": {
            "f": {
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "offVariant": "off",
                "rules": [
                    {
                        "clauses": [clause("plan", "in", "pro"), clause("seats", "gte", 10)],
                        "variant": "on",
                    },
                    {"clauses": [clause("country", "in", "US", negate=True)], "variant": "on"},
                ],
                "default": {
                    "split": {
                        "weights": [
                            {"variant": "on", "weight": 12.5},
                            {"variant": "off", "weight": 87.5},
                        ]
                    }
                },
            }
        },
    }
    back = flagd_to_fader(to_flagd(parse_document(original)))
    rules = back["flags"]["f"]["rules"]
    assert [c["op"] for c in rules[0]["clauses"]] == ["in", "gte"]
    assert rules[1]["clauses"] == [
        {"attribute": "country", "op": "in", "values": ["US"], "negate": True}
    ]
    native, imported = fader_engine.load(original), fader_engine.load(back)
    for ctx in contexts(1000):
        assert native.evaluate("f", ctx).variant == imported.evaluate("f", ctx).variant
