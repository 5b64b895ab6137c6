"""The Unleash translation, construct by construct: what each becomes in Fader, and refusals."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest
from unleash_support import load_fixture

import fader_engine
from fader_server.migration.model import Answer, SourceDocumentError, SourceSDKMissingError
from fader_server.migration.unleash import SOURCE
from fader_server.migration.unleash.context import render, typed_values, unleash_context


def _one(strategies: list[Any], **flag: Any) -> dict[str, Any]:
    data = {
        "version": 2,
        "features": [{"name": "f", "enabled": True, "strategies": strategies, **flag}],
    }
    translation = SOURCE.translate(data, "production")
    assert not translation.unsupported, translation.unsupported
    fader_engine.load(translation.document)  # the engine accepts every translated document
    return translation.document


def _rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "description"}
        for r in document["flags"]["f"].get("rules", [])
    ]


def _helper(document: dict[str, Any], clause: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The rules of the helper segment a (negated) in_segment clause names."""
    assert clause["op"] == "in_segment"
    return [r["clauses"] for r in document["segments"][clause["values"][0]]["rules"]]


def test_a_flag_without_variants_is_a_boolean_flag_with_the_sdk_answers() -> None:
    data = {"features": [{"name": "f", "enabled": True, "strategies": [{"name": "default"}]}]}
    translation = SOURCE.translate(data, "staging")
    flag = translation.document["flags"]["f"]
    assert flag["variants"] == {"on": True, "off": False}
    assert flag["offVariant"] == "off"
    assert flag["rules"][0]["clauses"] == []
    assert flag["rules"][0]["variant"] == "on"
    assert flag["default"] == {"variant": "off"}
    assert translation.answers["f"] == {
        "on": Answer(True, "disabled"),
        "off": Answer(False, "disabled"),
    }
    assert translation.document["metadata"]["environment"] == "staging"


def test_no_strategies_means_everyone_and_disabled_means_off() -> None:
    document = _one([])
    assert document["flags"]["f"]["default"] == {"variant": "on"}
    assert "rules" not in document["flags"]["f"]
    assert _one([{"name": "default"}], enabled=False)["flags"]["f"]["enabled"] is False


def test_keys_that_fader_cannot_use_are_renamed_and_noted() -> None:
    data = {
        "features": [
            {"name": "Beta.Users_List", "enabled": True, "strategies": []},
            {"name": "beta.users_list", "enabled": True, "strategies": []},
        ]
    }
    translation = SOURCE.translate(data, "production")
    assert translation.keys == {
        "Beta.Users_List": "beta.users_list",
        "beta.users_list": "beta.users_list-2",
    }
    assert any("Beta.Users_List" in note for note in translation.notes)


def test_user_ids_match_the_string_and_the_number_it_renders_from() -> None:
    document = _one([{"name": "userWithId", "parameters": {"userIds": "alice, 42,"}}])
    clause = _rules(document)[0]["clauses"][0]
    assert clause == {"attribute": "targetingKey", "op": "in", "values": ["alice", "42", 42, ""]}


def test_a_default_stickiness_rollout_hashes_the_user_else_the_session() -> None:
    document = _one([{"name": "flexibleRollout", "parameters": {"rollout": "30"}}])
    rules = _rules(document)
    assert [r["clauses"] for r in rules] == [
        [{"attribute": "targetingKey", "op": "unleash_rollout", "values": ["f", 30]}],
        [
            {"attribute": "targetingKey", "op": "exists", "negate": True},
            {"attribute": "sessionId", "op": "unleash_rollout", "values": ["f", 30]},
        ],
    ]


@pytest.mark.parametrize(
    ("params", "clauses"),
    [
        ({"rollout": "0", "stickiness": "userId", "groupId": "g"}, None),
        (
            {"rollout": "100", "stickiness": "tenant", "groupId": "g"},
            [{"attribute": "tenant", "op": "exists"}],
        ),
        ({"rollout": "100"}, []),
        ({"rollout": "100", "stickiness": "random"}, []),
        (
            {"rollout": "12", "stickiness": "sessionId", "groupId": "g"},
            [{"attribute": "sessionId", "op": "unleash_rollout", "values": ["g", 12]}],
        ),
        ({"rollout": "not a number"}, None),
    ],
)
def test_rollout_percentages_and_stickiness(params: dict[str, Any], clauses: Any) -> None:
    rules = _rules(_one([{"name": "flexibleRollout", "parameters": params}]))
    assert (rules[0]["clauses"] if rules else None) == clauses


def test_gradual_rollouts_need_a_group_and_random_ones_a_constant_answer() -> None:
    rules = _rules(
        _one([{"name": "gradualRolloutUserId", "parameters": {"percentage": "5", "groupId": "g"}}])
    )
    assert rules[0]["clauses"] == [
        {"attribute": "targetingKey", "op": "unleash_rollout", "values": ["g", 5]}
    ]
    assert (
        _rules(_one([{"name": "gradualRolloutSessionId", "parameters": {"percentage": "5"}}])) == []
    )
    assert (
        _rules(_one([{"name": "gradualRolloutRandom", "parameters": {"percentage": "100"}}]))[0][
            "clauses"
        ]
        == []
    )
    assert _rules(_one([{"name": "gradualRolloutRandom", "parameters": {"percentage": "1"}}])) == []


def test_remote_addresses_become_ip_in_with_networks() -> None:
    rules = _rules(
        _one(
            [
                {
                    "name": "remoteAddress",
                    "parameters": {"IPs": "10.1.2.3/8, 192.168.1.7,,2001:db8::/32"},
                }
            ]
        )
    )
    assert rules[0]["clauses"] == [
        {
            "attribute": "remoteAddress",
            "op": "ip_in",
            "values": ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"],
        }
    ]


def test_host_names_match_the_hostname_attribute_ignoring_case() -> None:
    document = _one([{"name": "applicationHostname", "parameters": {"hostNames": "Web-1"}}])
    engine = fader_engine.load(document)
    assert engine.evaluate("f", {"hostname": "WEB-1"}).variant == "on"
    assert engine.evaluate("f", {"hostname": "web-12"}).variant == "off"
    assert engine.evaluate("f", {}).variant == "off"


def test_not_in_is_true_for_a_missing_field_through_a_negated_helper_segment() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [{"contextName": "plan", "operator": "NOT_IN", "values": ["free"]}],
            }
        ]
    )
    (clause,) = _rules(document)[0]["clauses"]
    assert clause["negate"] is True
    assert _helper(document, clause) == [[{"attribute": "plan", "op": "in", "values": ["free"]}]]
    engine = fader_engine.load(document)
    assert [
        engine.evaluate("f", ctx).variant for ctx in ({}, {"plan": "free"}, {"plan": "pro"})
    ] == ["on", "off", "on"]


def test_inverted_constraints_negate_the_whole_test() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [
                    {"contextName": "age", "operator": "NUM_GT", "value": "18", "inverted": True}
                ],
            }
        ]
    )
    engine = fader_engine.load(document)
    answers = [
        engine.evaluate("f", {"age": a} if a is not None else {}).variant
        for a in (None, 19, 18, "old")
    ]
    assert answers == ["on", "off", "on", "on"]


def test_string_operators_also_match_the_booleans_unleash_sees_as_text() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [
                    {"contextName": "email", "operator": "STR_STARTS_WITH", "values": ["tr", "@"]}
                ],
            }
        ]
    )
    (clause,) = _rules(document)[0]["clauses"]
    assert _helper(document, clause) == [
        [{"attribute": "email", "op": "starts_with", "values": ["tr", "@"]}],
        [{"attribute": "email", "op": "in", "values": [True]}],
    ]


def test_case_insensitive_operators_lowercase_like_unleash() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [
                    {
                        "contextName": "name",
                        "operator": "STR_CONTAINS",
                        "values": ["Ki"],
                        "caseInsensitive": True,
                    }
                ],
            }
        ]
    )
    engine = fader_engine.load(document)
    # The Kelvin sign lowercases to k; a dotted capital I to i + a combining dot.
    for name, expected in [
        ("KI", "on"),
        ("\u212ai", "on"),
        ("k\u0130", "on"),
        ("\u0130k", "off"),
        ("k\u0131", "off"),
        ("kj", "off"),
    ]:
        assert engine.evaluate("f", {"name": name}).variant == expected, name


def test_num_eq_is_unleash_epsilon_equality() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [{"contextName": "score", "operator": "NUM_EQ", "value": "0"}],
            }
        ]
    )
    engine = fader_engine.load(document)
    for score, expected in [
        (0, "on"),
        (1e-17, "on"),
        (-2.2e-16, "on"),
        (2.3e-16, "off"),
        ("0", "off"),
        (False, "off"),
    ]:
        assert engine.evaluate("f", {"score": score}).variant == expected, score


def test_dates_and_versions_accept_only_what_unleash_parses() -> None:
    document = _one(
        [
            {
                "name": "default",
                "constraints": [
                    {
                        "contextName": "currentTime",
                        "operator": "DATE_AFTER",
                        "value": "2026-01-01T00:00:00.000Z",
                    }
                ],
            },
            {
                "name": "default",
                "constraints": [
                    {"contextName": "appVersion", "operator": "SEMVER_GT", "value": "1.2.3"}
                ],
            },
            {
                "name": "default",
                "constraints": [
                    {
                        "contextName": "appVersion",
                        "operator": "SEMVER_EQ",
                        "value": "v9.9.9",
                        "inverted": True,
                    }
                ],
            },
        ]
    )
    assert len(_rules(document)) == 2  # a 'v' operand compiles to false, inverted or not
    engine = fader_engine.load(document)
    for ctx, expected in [
        ({"currentTime": "2026-01-01T00:00:01Z"}, "on"),
        ({"currentTime": 1767225601}, "off"),
        ({"currentTime": "2026-01-01 00:00:01Z"}, "off"),
        ({"appVersion": "1.2.4"}, "on"),
        ({"appVersion": "v1.2.4"}, "off"),
        ({"appVersion": "1.3"}, "off"),
    ]:
        assert engine.evaluate("f", ctx).variant == expected, ctx


def test_segments_become_fader_segments() -> None:
    data = load_fixture("constraints.json")
    translation = SOURCE.translate(data, "production")
    # The conventions the payload relies on are spelled out.
    assert any(n.startswith("NUM_* constraints") for n in translation.notes)
    assert any(n.startswith("date constraints") for n in translation.notes)
    assert translation.segment_keys["1"] == "unleash-segment-1"
    segment = translation.document["segments"]["unleash-segment-1"]
    assert segment["rules"] == [
        {
            "clauses": [
                {"attribute": "country", "op": "in", "values": ["NL"]},
                {"attribute": "plan", "op": "in", "values": ["pro", "enterprise"]},
            ]
        }
    ]
    rules = translation.document["flags"]["segment-users"]["rules"]
    assert {"op": "in_segment", "values": ["unleash-segment-1"]} in rules[0]["clauses"]


def test_variants_mirror_get_variant_and_bucket_like_unleash() -> None:
    data = load_fixture("variants.json")
    translation = SOURCE.translate(data, "production")
    flag = translation.document["flags"]["pricing-config"]
    assert flag["type"] == "object"
    assert flag["variants"]["number"] == {
        "name": "number",
        "enabled": True,
        "feature_enabled": True,
        "payload": {"type": "number", "value": "42"},
    }
    assert flag["variants"][flag["offVariant"]] == {
        "name": "disabled",
        "enabled": False,
        "feature_enabled": False,
    }
    # Overrides come first, then the split.
    assert [r.get("variant") for r in flag["rules"]] == ["json", "json", "csv", None]
    split = flag["rules"][-1]["split"]
    assert split["bucketing"] == {
        "algorithm": "unleash",
        "group": "pricing-config",
        "seed": 86028157,
        "modulus": 1000,
        "fallback": [],
    }
    assert split["weights"] == [
        {"variant": "json", "weight": 10},
        {"variant": "number", "weight": 45},
        {"variant": "csv", "weight": 45},
    ]
    assert translation.answers["pricing-config"]["csv"] == Answer(
        {"type": "csv", "value": "a,b,c"}, "csv"
    )
    colour = translation.document["flags"]["checkout-colour"]["rules"][0]["split"]
    assert colour["bucketing"]["fallback"] == ["sessionId"]
    assert "by" not in colour
    tenant = translation.document["flags"]["tenant-sticky"]["default"]["split"]
    assert tenant["by"] == "tenant"


def test_strategy_variants_use_the_strategy_group_and_a_name_reused_with_another_payload() -> None:
    translation = SOURCE.translate(load_fixture("variants.json"), "production")
    flag = translation.document["flags"]["strategy-variants"]
    assert flag["rules"][0]["split"]["bucketing"]["group"] == "sv-1"
    shared = [
        k for k, a in translation.answers["strategy-variants"].items() if a.variant == "shared"
    ]
    assert len(shared) == 2  # "shared" from the strategy and from the flag differ in payload


def test_dependencies_become_prerequisites() -> None:
    translation = SOURCE.translate(load_fixture("dependencies.json"), "production")
    flags = translation.document["flags"]
    assert flags["child-of-on"]["prerequisites"] == [{"flag": "parent-on", "variants": ["on"]}]
    assert flags["child-of-on-disabled"]["prerequisites"] == [
        {"flag": "parent-on", "variants": ["off"]}
    ]
    assert flags["child-of-variants"]["prerequisites"] == [
        {"flag": "parent-variants", "variants": ["gold", "silver"]}
    ]
    assert "prerequisites" not in flags["child-of-off-negated"]
    for always_off in ("child-of-off", "child-of-missing", "grandchild"):
        assert flags[always_off]["enabled"] is False
    assert [u.flag for u in translation.unsupported] == ["child-of-no-group"]


UNSUPPORTED = {
    "custom-strategy": "custom strategy",
    "random-half": "random",
    "gradual-random-half": "random",
    "regex-operator": "RE2",
    "uses-regex-segment": "segment 7",
    "unknown-segment": "no such segment",
    "rollout-above-100": "above 100",
    "bad-date": "dates of the form",
    "bad-number": "plain number",
    "huge-number": "2^53",
    "loose-semver": "strict SemVer",
    "sigma-case-insensitive": "sigma",
    "dotted-property": "dot",
    "backslash-value": "backslash",
    "weights-not-dividing": "divide",
    "time-stickiness": "clock",
    "bad-ip": "IP address",
    "parent-custom": "custom strategy",
    "child-of-untranslated": "not translated",
}


def test_unsupported_constructs_are_listed_per_flag_and_the_rest_is_translated() -> None:
    translation = SOURCE.translate(load_fixture("unsupported.json"), "production")
    by_flag = {u.flag: u for u in translation.unsupported if u.flag is not None}
    assert set(by_flag) == set(UNSUPPORTED)
    for flag, words in UNSUPPORTED.items():
        entry = by_flag[flag]
        assert words in f"{entry.construct} {entry.detail}", (flag, entry)
        assert translation.keys[flag] not in translation.document["flags"]
    segments = [u for u in translation.unsupported if u.segment is not None]
    assert [u.segment for u in segments] == ["7"]
    assert set(translation.document["flags"]) == {"still-fine"}
    fader_engine.load(translation.document)


@pytest.mark.parametrize("data", [[], {"features": {}}, {"toggles": []}, "x"])
def test_a_document_that_is_no_unleash_payload_is_refused(data: Any) -> None:
    with pytest.raises(SourceDocumentError):
        SOURCE.translate(data, "production")


def test_the_context_convention_renders_values_as_unleash_strings() -> None:
    assert [render(v) for v in ("a", True, False, 5, 5.0, 1.5, 1e-07, None, [1])] == [
        "a",
        "true",
        "false",
        "5",
        "5",
        "1.5",
        "1e-07",
        None,
        None,
    ]
    assert typed_values("5") == ["5", 5]
    assert typed_values("05") == ["05"]
    assert typed_values("1.5") == ["1.5", 1.5]
    assert typed_values("1.50") == ["1.50"]
    assert typed_values("true") == ["true", True]
    assert unleash_context({"targetingKey": "u", "sessionId": 7, "plan": "pro", "n": None}) == {
        "userId": "u",
        "sessionId": "7",
        "properties": {"plan": "pro"},
    }


def test_a_missing_sdk_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == "UnleashClient"] + ["UnleashClient"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SourceSDKMissingError) as caught:
        SOURCE.evaluator({"features": []})
    assert caught.value.package == "UnleashClient"


JUNK: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, [None], {"a": None}, "150", "+7"]


def _mutations(node: Any, rng: random.Random) -> Any:
    if isinstance(node, dict):
        return {
            k: (rng.choice(JUNK) if rng.random() < 0.15 else _mutations(v, rng))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [rng.choice(JUNK) if rng.random() < 0.15 else _mutations(v, rng) for v in node]
    return node


@pytest.mark.parametrize(
    "fixture",
    [
        "strategies.json",
        "constraints.json",
        "variants.json",
        "dependencies.json",
        "unsupported.json",
    ],
)
def test_corrupt_payloads_never_break_the_import(fixture: str) -> None:
    rng = random.Random(fixture)
    original = load_fixture(fixture)
    for _ in range(40):
        data = {
            "features": _mutations(original["features"], rng),
            "segments": _mutations(original.get("segments", []), rng),
        }
        translation = SOURCE.translate(data, "production")
        fader_engine.load(translation.document)
        assert set(translation.answers) == set(translation.document["flags"])
