"""Form rows ⇄ configuration JSON, and engine problems → the fields they are about."""

from __future__ import annotations

from typing import Any

import pytest
from web_console import PRODUCTION_CHECKOUT

from fader_engine.errors import ConfigurationError
from fader_engine.parse import parse_document
from fader_server.errors import FieldProblem
from fader_server.web import rules_form
from fader_server.web.forms import Form, from_problems, parse_value, show_value

VARIANTS = ["on", "off"]


def _as_form(config: rules_form.ConfigForm) -> Form:
    """The fields a browser would post for `config` (as the template renders them)."""
    items = [("off-variant", config.off_variant), ("version", str(config.version))]
    items.append(("enabled", "true" if config.enabled else "false"))
    for i, rule in enumerate(config.rules):
        items += [(f"rules-{i}-id", rule.id), (f"rules-{i}-description", rule.description)]
        for j, clause in enumerate(rule.clauses):
            name = f"rules-{i}-clauses-{j}"
            items += [(f"{name}-attribute", clause.attribute), (f"{name}-op", clause.op)]
            items += [(f"{name}-values", clause.values)]
            if clause.negate:
                items.append((f"{name}-negate", "on"))
        items += _serve(f"rules-{i}", rule.serve)
    items += _serve("default", config.default)
    return Form(items)


def _serve(prefix: str, serve: rules_form.ServeRow) -> list[tuple[str, str]]:
    items = [(f"{prefix}-serve", serve.mode), (f"{prefix}-by", serve.by)]
    items.append((f"{prefix}-bucketing", serve.bucketing))
    return items + [(f"{prefix}-weight-{i}", w) for i, w in enumerate(serve.weights)]


def test_a_configuration_survives_the_round_trip_through_the_form() -> None:
    config = {
        **PRODUCTION_CHECKOUT,
        "rules": [
            *PRODUCTION_CHECKOUT["rules"],
            {
                "id": "beta",
                "description": "beta builds",
                "clauses": [
                    {"attribute": "version", "op": "semver_gte", "values": ["2.0.0"]},
                    {"attribute": "plan", "op": "in", "values": ["pro", 42, True, "42"]},
                    {"attribute": "email", "op": "exists", "negate": True},
                ],
                "split": {
                    "by": "orgId",
                    "weights": [
                        {"variant": "on", "weight": 12.5},
                        {"variant": "off", "weight": 87.5},
                    ],
                },
            },
        ],
    }
    rows = rules_form.from_config(config, 4, VARIANTS)
    _, data, _ = rules_form.read(_as_form(rows), VARIANTS)
    assert data == {**config, "prerequisites": []}


def test_rows_posted_with_gaps_are_renumbered_with_their_fields() -> None:
    form = Form(
        [
            ("off-variant", "off"),
            ("default-serve", "variant:off"),
            ("rules-3-serve", "variant:on"),
            ("rules-3-clauses-5-op", "in"),
            ("rules-3-clauses-5-attribute", "country"),
            ("rules-3-clauses-5-values", "NL"),
            ("rules-7-serve", "variant:off"),
        ]
    )
    _, data, fields = rules_form.read(form, VARIANTS)
    assert [r.get("variant") for r in data["rules"]] == ["on", "off"]
    assert data["rules"][0]["clauses"] == [{"op": "in", "attribute": "country", "values": ["NL"]}]
    assert fields["/rules/0/clauses/0/values"] == "rules-0-clauses-0-values"
    assert fields["/rules/1"] == "rules-1"


def test_problems_land_on_the_deepest_field_they_are_about() -> None:
    fields = {"/rules/0": "rules-0", "/rules/0/split/weights": "rules-0-weights"}
    errors = from_problems(
        [
            FieldProblem("/flags/f/rules/0/split/weights", "in environment 'prod': sum is 90"),
            FieldProblem("/flags/f/rules/0/clauses/3/op", "unknown operator"),
            FieldProblem("/flags/other/offVariant", "not this flag"),
        ],
        "/flags/f",
        fields,
    )
    assert errors.of("rules-0-weights") == ["sum is 90"]
    assert errors.of("rules-0") == ["unknown operator"]
    assert errors.summary[-1] == (None, "not this flag")


def test_clause_values_read_back_as_written() -> None:
    for value in ("pro", "42", 42, 4.5, True, "true", " spaced ", '"quoted"'):
        assert parse_value(show_value(value)) == value
    assert parse_value("@example.com") == "@example.com"


IMPORTED = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {
            "id": "office",
            "clauses": [
                {"attribute": "ip", "op": "ip_in", "values": ["10.0.0.0/8", "2001:db8::/32"]},
                {"attribute": "targetingKey", "op": "unleash_rollout", "values": ["25", 12.5]},
                {
                    "attribute": "userId",
                    "op": "unleash_rollout",
                    "values": [" new checkout ", 40],
                    "negate": True,
                },
            ],
            "variant": "on",
        },
        {
            "clauses": [{"attribute": "targetingKey", "op": "unleash_rollout", "values": ["g", 5]}],
            "split": {
                "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}],
                "bucketing": {
                    "algorithm": "unleash",
                    "group": "new-checkout",
                    "seed": 86028157,
                    "modulus": 1000,
                    "fallback": ["sessionId", "remoteAddress"],
                },
            },
        },
    ],
    "default": {
        "split": {
            "by": "key",
            "weights": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}],
            "bucketing": {"algorithm": "launchdarkly", "prefix": "new-checkout.8f1c2e"},
        }
    },
    "prerequisites": [],
}


def _document(config: dict[str, Any]) -> dict[str, Any]:
    flag = {"type": "boolean", "variants": {"on": True, "off": False}, **config}
    return {"format": "fader/v1", "flags": {"f": flag}}


def test_imported_clauses_and_vendor_bucketing_survive_the_round_trip() -> None:
    rows = rules_form.from_config(IMPORTED, 3, VARIANTS)
    assert rows.rules[0].clauses[1].values == '"25"\n12.5'
    assert rows.default.bucketing_words == "LaunchDarkly's hash, as imported"
    _, data, fields = rules_form.read(_as_form(rows), VARIANTS)
    assert data == IMPORTED
    parse_document(_document(data))  # what the test round-trips is a valid configuration
    assert fields["/default/split/bucketing"] == "default-weights"


def test_a_typed_rollout_group_is_text_and_a_new_split_has_fader_bucketing() -> None:
    rows = rules_form.from_config(IMPORTED, 3, VARIANTS)
    rows.rules[0].clauses[1].values = "25\n30"
    assert rules_form.apply(rows, "add-rule", VARIANTS, "") == "rules-2-id"
    rows.rules[2].serve = rules_form.ServeRow("split", "", ["50", "50"])
    _, data, _ = rules_form.read(_as_form(rows), VARIANTS)
    assert data["rules"][0]["clauses"][1]["values"] == ["25", 30]
    assert data["rules"][2]["split"] == {
        "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
    }


def test_a_tampered_bucketing_field_reaches_the_engine_as_something_it_refuses() -> None:
    form = Form(
        [
            ("off-variant", "off"),
            ("default-serve", "split"),
            ("default-weight-0", "100"),
            ("default-bucketing", '{"algorithm": "launchdarkly", "algorithm": "unleash"}'),
        ]
    )
    _, data, fields = rules_form.read(form, VARIANTS)
    with pytest.raises(ConfigurationError) as refused:
        parse_document(_document(data))
    paths = [problem.path for problem in refused.value.problems]
    assert paths == ["/flags/f/default/split/bucketing"]
    errors = from_problems(refused.value.problems, "/flags/f", fields)
    assert errors.of("default-weights")
