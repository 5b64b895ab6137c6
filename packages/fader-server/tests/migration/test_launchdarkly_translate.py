"""What each LaunchDarkly construct becomes in the Fader document (parity is tested apart)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import fader_engine
from fader_server.migration.launchdarkly import SOURCE
from fader_server.migration.launchdarkly.clauses import MAX_VALUES
from fader_server.migration.model import Answer, SourceDocumentError, Translation


def _flag(key: str = "f", **fields: Any) -> dict[str, Any]:
    flag = {
        "key": key,
        "version": 1,
        "on": True,
        "salt": "s",
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
    }
    flag.update(fields)
    return flag


def _translate(*flags: dict[str, Any], segments: dict[str, Any] | None = None) -> Translation:
    data = {"flags": {f["key"]: f for f in flags}, "segments": segments or {}}
    translation = SOURCE.translate(data, "production")
    fader_engine.load(translation.document)  # every translation is a valid Fader document
    return translation


def _eval(translation: Translation, key: str, ctx: dict[str, Any]) -> Answer:
    resolution = fader_engine.load(translation.document).evaluate(translation.keys[key], ctx)
    assert resolution.variant is not None
    return translation.answers[translation.keys[key]][resolution.variant]


def test_the_three_document_shapes_are_read() -> None:
    flag = _flag("a")
    plain = SOURCE.translate({"flags": {"a": flag}, "segments": {}}, "p")
    put = SOURCE.translate({"path": "/", "data": {"flags": {"a": flag}, "segments": {}}}, "p")
    values = SOURCE.translate({"flagValues": {"a": True}}, "p")
    assert plain.document["flags"] == put.document["flags"]
    assert values.document["flags"]["a"]["variants"] == {"true": True}
    assert values.answers["a"] == {"true": Answer(True, "0")}
    assert plain.document["metadata"] == {"source": "launchdarkly", "environment": "p"}


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"other": 1},
        {"path": "/flags/a", "data": {}},
        {"flags": []},
        {"flags": {"a": _flag("a")}, "flagValues": {"a": 1}},
    ],
)
def test_what_is_not_launchdarkly_data_is_refused(data: Any) -> None:
    with pytest.raises(SourceDocumentError):
        SOURCE.translate(data, "p")


def test_translation_is_pure() -> None:
    data = {
        "flags": {
            "a": _flag(
                "a",
                rules=[
                    {
                        "clauses": [{"attribute": "v", "op": "semVerLessThan", "values": ["1.2"]}],
                        "variation": 0,
                    }
                ],
            )
        }
    }
    before = copy.deepcopy(data)
    assert SOURCE.translate(data, "p") == SOURCE.translate(data, "p")
    assert data == before


def test_invalid_keys_are_renamed_but_bucket_with_the_original_key() -> None:
    flag = _flag(
        "Checkout_V2",
        fallthrough={
            "rollout": {
                "variations": [{"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]
            }
        },
    )
    translation = _translate(flag)
    assert translation.keys == {"Checkout_V2": "checkout_v2"}
    split = translation.document["flags"]["checkout_v2"]["default"]["split"]
    assert split["bucketing"] == {
        "algorithm": "launchdarkly",
        "prefix": "Checkout_V2.s",
        "contextKind": "user",
    }
    assert any("imported as 'checkout_v2'" in note for note in translation.notes)


def test_variant_names_come_from_values_and_answers_from_indexes() -> None:
    translation = _translate(
        _flag("b", variations=[True, False]),
        _flag("s", variations=["blue", "blue", "with space", "variation-9"]),
        _flag("o", variations=[{"a": 1}, [1]], offVariation=0, fallthrough={"variation": 0}),
        _flag("n", variations=[3, 2.5]),
    )
    assert translation.answers["b"] == {"true": Answer(True, "0"), "false": Answer(False, "1")}
    assert list(translation.document["flags"]["s"]["variants"]) == [
        "variation-0",
        "variation-1",
        "variation-2",
        "variation-3",
    ]
    assert translation.document["flags"]["o"]["type"] == "object"
    assert translation.document["flags"]["n"]["variants"] == {"3": 3, "variation-1": 2.5}
    assert translation.answers["s"]["variation-3"] == Answer("variation-9", "3")


def test_targets_come_first_and_only_for_their_kind() -> None:
    flag = _flag(
        targets=[{"values": ["alice"], "variation": 0}],
        contextTargets=[
            {"contextKind": "org", "values": ["acme"], "variation": 1},
            {"contextKind": "user", "values": [], "variation": 0},
        ],
        rules=[{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "variation": 1}],
    )
    translation = _translate(flag)
    rules = translation.document["flags"]["f"]["rules"]
    assert [r["variant"] for r in rules] == ["false", "true", "false"]
    assert rules[0]["clauses"] == [
        {"attribute": "targetingKey", "op": "in", "values": ["acme"]},
        {"attribute": "kind", "op": "in", "values": ["org"]},
    ]
    assert rules[1]["clauses"][1] == {"op": "in_segment", "values": ["ld-kind-user"]}
    assert _eval(translation, "f", {"targetingKey": "alice"}) == Answer(True, "0")
    assert _eval(translation, "f", {"targetingKey": "alice", "kind": "org"}) == Answer(False, "1")
    assert _eval(translation, "f", {"targetingKey": "acme", "kind": "org", "plan": "x"}) == (
        Answer(False, "1")
    )


def test_clauses_read_the_context_of_their_kind() -> None:
    rule = {
        "clauses": [
            {"contextKind": "org", "attribute": "/address/city", "op": "in", "values": ["Paris"]}
        ],
        "variation": 0,
    }
    translation = _translate(_flag(rules=[rule]))
    (only,) = translation.document["flags"]["f"]["rules"]
    assert only["clauses"] == [
        {"attribute": "address.city", "op": "in", "values": ["Paris"]},
        {"attribute": "kind", "op": "in", "values": ["org"]},
    ]


def test_clauses_of_two_kinds_never_match_and_are_left_out() -> None:
    rule = {
        "clauses": [
            {"contextKind": "org", "attribute": "a", "op": "in", "values": [1]},
            {"attribute": "b", "op": "in", "values": [1]},
        ],
        "variation": 0,
    }
    translation = _translate(_flag(rules=[rule]))
    assert "rules" not in translation.document["flags"]["f"]
    assert any("can never match" in note for note in translation.notes)


def test_a_kind_clause_matches_contexts_without_kind_as_users() -> None:
    rule = {
        "clauses": [{"attribute": "kind", "op": "in", "values": ["user", "org"]}],
        "variation": 0,
    }
    translation = _translate(_flag(rules=[rule]))
    rules = translation.document["flags"]["f"]["rules"]
    assert [r["clauses"] for r in rules] == [
        [{"attribute": "kind", "op": "in", "values": ["user", "org"]}],
        [{"attribute": "kind", "op": "exists", "negate": True}],
    ]


def test_anonymous_is_false_when_absent() -> None:
    rule = {"clauses": [{"attribute": "anonymous", "op": "in", "values": [False]}], "variation": 0}
    translation = _translate(_flag(rules=[rule]))
    assert _eval(translation, "f", {"targetingKey": "k"}) == Answer(True, "0")
    assert _eval(translation, "f", {"targetingKey": "k", "anonymous": True}) == Answer(False, "1")


def test_semver_clauses_refuse_the_v_prefix_launchdarkly_refuses() -> None:
    rules = [
        {"clauses": [{"attribute": "v", "op": "semVerLessThan", "values": ["2"]}], "variation": 0}
    ]
    translation = _translate(_flag(rules=rules))
    (only,) = translation.document["flags"]["f"]["rules"]
    assert only["clauses"] == [
        {"attribute": "v", "op": "semver_lt", "values": ["2.0.0"]},
        {"attribute": "v", "op": "starts_with", "values": ["v"], "negate": True},
        {"op": "in_segment", "values": ["ld-kind-user"]},
    ]
    assert _eval(translation, "f", {"targetingKey": "k", "v": "1.9"}) == Answer(True, "0")
    assert _eval(translation, "f", {"targetingKey": "k", "v": "v1.9.0"}) == Answer(False, "1")


def test_dates_compare_milliseconds_for_numbers_and_seconds_for_strings() -> None:
    rules = [
        {
            "clauses": [{"attribute": "t", "op": "before", "values": [1_700_000_000_000]}],
            "variation": 0,
        }
    ]
    translation = _translate(_flag(rules=rules))
    first, second = translation.document["flags"]["f"]["rules"]
    assert first["clauses"] == [
        {"attribute": "t", "op": "lt", "values": [1.7e12]},
        {"op": "in_segment", "values": ["ld-kind-user"]},
    ]
    assert second["clauses"][0] == {"attribute": "t", "op": "before", "values": [1.7e9]}
    assert _eval(translation, "f", {"targetingKey": "k", "t": 1_699_999_999_999}).variant == "0"
    assert _eval(translation, "f", {"targetingKey": "k", "t": 1_700_000_000}).variant == "0"
    assert _eval(translation, "f", {"targetingKey": "k", "t": "2023-11-14T22:13:19.999Z"}) == (
        Answer(True, "0")
    )
    assert _eval(translation, "f", {"targetingKey": "k", "t": "2023-11-14T22:13:20Z"}) == (
        Answer(False, "1")
    )


def test_long_in_lists_become_several_clauses() -> None:
    keys = [f"user-{i}" for i in range(MAX_VALUES + 5)]
    translation = _translate(_flag(targets=[{"values": keys, "variation": 0}]))
    rules = translation.document["flags"]["f"]["rules"]
    assert len(rules) == 2
    assert _eval(translation, "f", {"targetingKey": keys[-1]}) == Answer(True, "0")


def test_rollouts_become_splits_with_launchdarkly_bucketing() -> None:
    rollout = {
        "seed": 7,
        "contextKind": "org",
        "bucketBy": "/company/id",
        "variations": [
            {"variation": 0, "weight": 30000},
            {"variation": 1, "weight": 40000},
            {"variation": 0, "weight": 20000},
        ],
    }
    translation = _translate(_flag(fallthrough={"rollout": rollout}))
    split = translation.document["flags"]["f"]["default"]["split"]
    assert split == {
        "by": "company.id",
        "weights": [
            {"variant": "true", "weight": 30},
            {"variant": "false", "weight": 40},
            {"variant": "true-2", "weight": 30},
        ],
        "bucketing": {"algorithm": "launchdarkly", "prefix": "7", "contextKind": "org"},
    }
    assert translation.answers["f"]["true-2"] == Answer(True, "0")


def test_experiments_bucket_by_key_and_uneven_weights_fill_the_last_bucket() -> None:
    rollout = {
        "kind": "experiment",
        "bucketBy": "orgId",
        "variations": [
            {"variation": 1, "weight": 0},
            {"variation": 0, "weight": 12345},
            {"variation": 1, "weight": 100},
        ],
    }
    translation = _translate(_flag(fallthrough={"rollout": rollout}))
    split = translation.document["flags"]["f"]["default"]["split"]
    assert "by" not in split
    assert split["weights"] == [
        {"variant": "false", "weight": 0},
        {"variant": "true", "weight": 12.345},
        {"variant": "false-2", "weight": 87.655},
    ]
    assert split["bucketing"]["prefix"] == "f.s"


def test_prerequisites_name_every_variant_of_the_required_variation() -> None:
    base = _flag(
        "base",
        fallthrough={
            "rollout": {
                "variations": [
                    {"variation": 0, "weight": 50000},
                    {"variation": 1, "weight": 25000},
                    {"variation": 0, "weight": 25000},
                ]
            }
        },
    )
    dependent = _flag("dep", prerequisites=[{"key": "base", "variation": 0}])
    missing = _flag("lost", prerequisites=[{"key": "nowhere", "variation": 0}])
    translation = _translate(base, dependent, missing)
    flags = translation.document["flags"]
    assert flags["dep"]["prerequisites"] == [{"flag": "base", "variants": ["true", "true-2"]}]
    # Still on, serving its off variation: a flag that is on passes prerequisites on it.
    assert flags["lost"]["enabled"] is True
    assert flags["lost"]["default"] == {"variant": "false"}
    assert "prerequisites" not in flags["lost"]
    assert any("'nowhere' can never pass" in note for note in translation.notes)


def test_off_flags_are_disabled_and_deleted_ones_skipped() -> None:
    translation = _translate(
        _flag("off", on=False, offVariation=0), {"key": "gone", "version": 3, "deleted": True}
    )
    assert translation.keys == {"off": "off"}
    assert translation.document["flags"]["off"]["enabled"] is False
    assert translation.document["flags"]["off"]["offVariant"] == "true"


def test_segments_guard_their_lists_by_kind_and_exclusions_by_a_helper() -> None:
    segment = {
        "key": "Beta",
        "version": 1,
        "included": ["alice"],
        "excluded": ["bob"],
        "includedContexts": [{"contextKind": "org", "values": ["acme"]}],
        "rules": [
            {"clauses": [{"attribute": "email", "op": "endsWith", "values": ["@example.com"]}]}
        ],
    }
    rule = {
        "clauses": [{"attribute": "", "op": "segmentMatch", "values": ["Beta", "nope"]}],
        "variation": 0,
    }
    translation = _translate(_flag(rules=[rule]), segments={"Beta": segment})
    assert translation.segment_keys == {"Beta": "beta"}
    segments = translation.document["segments"]
    assert set(segments) == {"beta", "beta.ld-excluded", "ld-kind-user"}
    assert "included" not in segments["beta"]
    last = segments["beta"]["rules"][-1]["clauses"]
    assert {"op": "in_segment", "values": ["beta.ld-excluded"], "negate": True} in last
    (only,) = translation.document["flags"]["f"]["rules"]
    assert only["clauses"] == [{"op": "in_segment", "values": ["beta"]}]
    assert _eval(translation, "f", {"targetingKey": "bob", "email": "b@example.com"}).variant == "1"
    assert _eval(translation, "f", {"targetingKey": "x", "email": "x@example.com"}).variant == "0"
    assert _eval(translation, "f", {"targetingKey": "alice", "kind": "org"}).variant == "1"


def test_segment_rules_weighted_0_or_100_percent_are_exact() -> None:
    segment = {
        "key": "w",
        "version": 1,
        "rules": [
            {"clauses": [{"attribute": "a", "op": "in", "values": [1]}], "weight": 100000},
            {
                "clauses": [{"attribute": "b", "op": "in", "values": [1]}],
                "weight": 0,
                "rolloutContextKind": "org",
            },
        ],
    }
    rule = {"clauses": [{"attribute": "", "op": "segmentMatch", "values": ["w"]}], "variation": 0}
    translation = _translate(_flag(rules=[rule]), segments={"w": segment})
    assert _eval(translation, "f", {"targetingKey": "k", "a": 1}).variant == "0"
    # Weight 0 admits exactly the contexts of another kind than the rollout's (bucket -1).
    assert _eval(translation, "f", {"targetingKey": "k", "b": 1}).variant == "0"
    assert _eval(translation, "f", {"targetingKey": "k", "b": 1, "kind": "org"}).variant == "1"
