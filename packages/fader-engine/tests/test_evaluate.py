"""Evaluation of Fader documents: reasons, rule order, operators, segments, prerequisites."""

from __future__ import annotations

from typing import Any

import pytest

import fader_engine
from fader_engine import ErrorCode, Reason, ResolvedType


def doc(flags: dict[str, Any], segments: dict[str, Any] | None = None, **extra: Any) -> Any:
    out: dict[str, Any] = {"format": "fader/v1", "flags": flags, **extra}
    if segments is not None:
        out["segments"] = segments
    return out


def boolean_flag(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "offVariant": "off",
        "default": {"variant": "off"},
    }
    base.update(fields)
    return base


def rule(*clauses: dict[str, Any], variant: str = "on") -> dict[str, Any]:
    return {"clauses": list(clauses), "variant": variant}


def clause(attribute: str, op: str, *values: Any, negate: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"attribute": attribute, "op": op, "values": list(values)}
    if negate:
        out["negate"] = True
    return out


def evaluate_one(flag: dict[str, Any], context: dict[str, Any], **doc_fields: Any) -> Any:
    engine = fader_engine.load(doc({"f": flag}, **doc_fields))
    return engine.evaluate("f", context)


def matches(c: dict[str, Any], context: dict[str, Any]) -> bool:
    result = evaluate_one(boolean_flag(rules=[rule(c)]), context)
    assert result.error_code is None, result
    return result.variant == "on"


def test_flag_without_targeting_is_static() -> None:
    result = evaluate_one(boolean_flag(), {})
    assert (result.value, result.variant, result.reason) == (False, "off", Reason.STATIC)


def test_disabled_flag_serves_off_variant() -> None:
    flag = boolean_flag(enabled=False, default={"variant": "on"}, rules=[rule()])
    result = evaluate_one(flag, {"targetingKey": "u"})
    assert (result.value, result.variant, result.reason) == (False, "off", Reason.DISABLED)


def test_first_matching_rule_wins_and_reason_is_targeting_match() -> None:
    flag = {
        "type": "string",
        "variants": {"a": "A", "b": "B", "c": "C"},
        "offVariant": "c",
        "rules": [
            rule(clause("plan", "in", "pro"), variant="a"),
            rule(clause("plan", "in", "pro", "free"), variant="b"),
        ],
        "default": {"variant": "c"},
    }
    engine = fader_engine.load(doc({"f": flag}))
    assert engine.evaluate("f", {"plan": "pro"}).variant == "a"
    assert engine.evaluate("f", {"plan": "free"}).variant == "b"
    fallthrough = engine.evaluate("f", {"plan": "team"})
    assert (fallthrough.variant, fallthrough.reason) == ("c", Reason.DEFAULT)


def test_all_clauses_of_a_rule_must_match() -> None:
    c1, c2 = clause("country", "in", "NL", "DE", "FR"), clause("plan", "in", "pro")
    flag = boolean_flag(rules=[rule(c1, c2)])
    engine = fader_engine.load(doc({"f": flag}))
    assert engine.evaluate("f", {"country": "DE", "plan": "pro"}).value is True
    assert engine.evaluate("f", {"country": "DE", "plan": "free"}).value is False
    assert engine.evaluate("f", {"country": "US", "plan": "pro"}).value is False


@pytest.mark.parametrize(
    ("c", "context", "expected"),
    [
        (clause("email", "ends_with", "@example.com"), {"email": "a@example.com"}, True),
        (clause("email", "ends_with", "@example.com"), {"email": "a@example.org"}, False),
        (clause("email", "starts_with", "admin", "root"), {"email": "root@x"}, True),
        (clause("email", "contains", "@ex"), {"email": "a@example.com"}, True),
        (clause("email", "contains", "@ex"), {"email": "a@other.com"}, False),
        (clause("email", "matches", r"^[a-z]+@example\.com$"), {"email": "bob@example.com"}, True),
        (clause("email", "matches", r"^[a-z]+@example\.com$"), {"email": "Bob@example.com"}, False),
        (clause("age", "gt", 17), {"age": 18}, True),
        (clause("age", "gt", 17), {"age": 17}, False),
        (clause("age", "gte", 18), {"age": 18.0}, True),
        (clause("age", "lt", 18), {"age": 17.5}, True),
        (clause("age", "lte", 18), {"age": 19}, False),
        (clause("plan", "in", "pro"), {"plan": "pro"}, True),
        (clause("seats", "in", 5), {"seats": 5.0}, True),
        (clause("beta", "in", True), {"beta": True}, True),
        (clause("beta", "in", True), {"beta": 1}, False),
        (clause("seats", "in", 1), {"seats": True}, False),
        (clause("seats", "in", 1), {"seats": "1"}, False),
        (clause("groups", "in", "staff"), {"groups": ["users", "staff"]}, True),
        (clause("groups", "in", "staff"), {"groups": ["users"]}, False),
        (clause("appVersion", "semver_gte", "2.1.0"), {"appVersion": "2.10.0"}, True),
        (clause("appVersion", "semver_gte", "2.1.0"), {"appVersion": "2.1.0-beta.1"}, False),
        (clause("appVersion", "semver_lt", "2.0.0"), {"appVersion": "v1.9"}, True),
        (clause("appVersion", "semver_eq", "1.2.3"), {"appVersion": "1.2.3+build.5"}, True),
        (clause("appVersion", "semver_gt", "1.0.0"), {"appVersion": "not-a-version"}, False),
        (
            clause("signup", "before", "2026-01-01T00:00:00Z"),
            {"signup": "2025-06-01T12:00:00Z"},
            True,
        ),
        (clause("signup", "after", "2026-01-01T00:00:00Z"), {"signup": 1798761600}, True),
        (clause("signup", "after", "2026-01-01T00:00:00Z"), {"signup": "yesterday"}, False),
        (clause("address.country", "in", "NL"), {"address": {"country": "NL"}}, True),
        (clause("address.country", "in", "NL"), {"address": "NL"}, False),
        (clause("plan", "exists"), {"plan": "pro"}, True),
        (clause("plan", "exists"), {}, False),
        (clause("plan", "exists", negate=True), {}, True),
    ],
)
def test_operator_semantics(c: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert matches(c, context) is expected


@pytest.mark.parametrize(
    "c",
    [
        clause("email", "ends_with", "@example.com"),
        clause("email", "ends_with", "@example.com", negate=True),
        clause("age", "gt", 3, negate=True),
        clause("a.b", "in", "x", negate=True),
        clause("plan", "in", "pro", negate=True),
    ],
)
def test_missing_attribute_never_matches_even_negated(c: dict[str, Any]) -> None:
    assert matches(c, {"targetingKey": "u"}) is False
    assert matches(c, {"targetingKey": "u", "email": None, "age": None, "plan": None}) is False


def test_negation_inverts_a_present_attribute() -> None:
    c = clause("email", "ends_with", "@example.com", negate=True)
    assert matches(c, {"email": "a@gmail.com"}) is True
    assert matches(c, {"email": "a@example.com"}) is False


def test_wrong_attribute_type_is_not_an_error() -> None:
    result = evaluate_one(
        boolean_flag(rules=[rule(clause("email", "ends_with", "x"))]), {"email": 42}
    )
    assert result.error_code is None
    assert result.reason is Reason.DEFAULT


def test_regular_expression_cannot_hang_evaluation() -> None:
    # Catastrophic backtracking for a backtracking engine; linear for RE2.
    c = clause("name", "matches", "^(a+)+$")
    assert matches(c, {"name": "a" * 50_000 + "!"}) is False


SEGMENTS = {
    "internal-users": {
        "included": ["contractor-1"],
        "excluded": ["intern-9"],
        "rules": [{"clauses": [clause("email", "ends_with", "@example.com")]}],
    },
    "beta": {"rules": [{"clauses": [{"op": "in_segment", "values": ["internal-users"]}]}]},
}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"targetingKey": "u1", "email": "a@example.com"}, True),
        ({"targetingKey": "contractor-1", "email": "c@agency.com"}, True),
        ({"targetingKey": "intern-9", "email": "i@example.com"}, False),
        ({"targetingKey": "u2", "email": "a@gmail.com"}, False),
        ({"email": "a@example.com"}, True),
    ],
)
def test_segment_membership(context: dict[str, Any], expected: bool) -> None:
    flag = boolean_flag(rules=[rule({"op": "in_segment", "values": ["beta"]})])
    engine = fader_engine.load(doc({"f": flag}, SEGMENTS))
    assert (engine.evaluate("f", context).variant == "on") is expected


def test_negated_segment_matches_outsiders() -> None:
    flag = boolean_flag(rules=[rule({"op": "in_segment", "values": ["beta"], "negate": True})])
    engine = fader_engine.load(doc({"f": flag}, SEGMENTS))
    assert engine.evaluate("f", {"targetingKey": "x"}).value is True
    assert engine.evaluate("f", {"targetingKey": "x", "email": "e@example.com"}).value is False


def test_prerequisite_gates_the_dependent_flag() -> None:
    flags = {
        "new-cart": boolean_flag(rules=[rule(clause("plan", "in", "pro"))]),
        "new-checkout": boolean_flag(
            default={"variant": "on"}, prerequisites=[{"flag": "new-cart", "variants": ["on"]}]
        ),
    }
    engine = fader_engine.load(doc(flags))
    passed = engine.evaluate("new-checkout", {"plan": "pro"})
    failed = engine.evaluate("new-checkout", {"plan": "free"})
    assert (passed.value, passed.reason) == (True, Reason.DEFAULT)
    assert (failed.value, failed.variant, failed.reason) == (False, "off", Reason.DISABLED)


def test_disabled_prerequisite_fails_even_if_off_variant_is_allowed() -> None:
    flags = {
        "parent": boolean_flag(enabled=False),
        "child": boolean_flag(
            default={"variant": "on"}, prerequisites=[{"flag": "parent", "variants": ["off"]}]
        ),
    }
    engine = fader_engine.load(doc(flags))
    assert engine.evaluate("child", {}).reason is Reason.DISABLED


def test_split_reason_and_missing_targeting_key() -> None:
    split = {
        "split": {"weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}
    }
    engine = fader_engine.load(doc({"f": boolean_flag(default=split)}))
    result = engine.evaluate("f", {"targetingKey": "user-1"})
    assert result.reason is Reason.SPLIT
    missing = engine.evaluate("f", {})
    assert (missing.reason, missing.error_code) == (Reason.ERROR, ErrorCode.TARGETING_KEY_MISSING)
    typed = engine.resolve_boolean("f", {}, True)
    assert (typed.value, typed.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)


def test_split_by_attribute_moves_a_whole_organisation_together() -> None:
    split = {
        "split": {
            "by": "orgId",
            "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}],
        }
    }
    engine = fader_engine.load(doc({"f": boolean_flag(default=split)}))
    for org in ("acme", "globex", 42):
        variants = {
            engine.evaluate("f", {"targetingKey": f"u{i}", "orgId": org}).variant for i in range(50)
        }
        assert len(variants) == 1


def test_flag_not_found() -> None:
    engine = fader_engine.load(doc({"f": boolean_flag()}))
    result = engine.resolve_boolean("nope", {}, True)
    assert (result.value, result.reason, result.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )


def test_evaluate_each_is_evaluate_for_each_key_in_order() -> None:
    flags = {
        "pro": boolean_flag(rules=[rule(clause("plan", "in", "pro"))]),
        "split": boolean_flag(
            default={
                "split": {
                    "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
                }
            }
        ),
        "static": boolean_flag(),
    }
    engine = fader_engine.load(doc(flags))
    keys = ["split", "nope", "pro", "static", "pro"]
    for n in range(50):
        context = {"targetingKey": f"user-{n}", "plan": "pro" if n % 3 else "free"}
        each = engine.evaluate_each(keys, context)
        assert each == [engine.evaluate(key, context) for key in keys]
    assert each[1].error_code is ErrorCode.FLAG_NOT_FOUND
    assert engine.evaluate_each([], {}) == []


@pytest.mark.parametrize(
    ("as_type", "default"),
    [
        (ResolvedType.STRING, "x"),
        (ResolvedType.INTEGER, 1),
        (ResolvedType.FLOAT, 1.0),
        (ResolvedType.OBJECT, {}),
    ],
)
def test_asking_for_the_wrong_type_returns_default_with_type_mismatch(
    as_type: ResolvedType, default: Any
) -> None:
    engine = fader_engine.load(doc({"f": boolean_flag()}))
    result = engine.resolve("f", {}, default, as_type)
    assert (result.value, result.reason, result.error_code) == (
        default,
        Reason.ERROR,
        ErrorCode.TYPE_MISMATCH,
    )
    assert "boolean" in (result.error_message or "")


def test_number_flag_resolves_as_float_and_integer() -> None:
    flag = {
        "type": "number",
        "variants": {"small": 10, "big": 2.5},
        "offVariant": "small",
        "default": {"variant": "small"},
    }
    engine = fader_engine.load(doc({"f": flag}))
    assert engine.resolve_integer("f", {}, 0).value == 10
    as_float = engine.resolve_float("f", {}, 0.0)
    assert as_float.value == 10.0
    assert isinstance(as_float.value, float)


def test_object_flag_returns_json_value() -> None:
    flag = {
        "type": "object",
        "variants": {"a": {"limits": [1, 2]}, "b": {}},
        "offVariant": "b",
        "default": {"variant": "a"},
    }
    engine = fader_engine.load(doc({"f": flag}))
    assert engine.resolve_object("f", {}, {}).value == {"limits": [1, 2]}


def test_flag_metadata_is_returned_with_every_evaluation() -> None:
    flag = boolean_flag(metadata={"owner": "payments", "version": 3})
    result = evaluate_one(flag, {})
    assert dict(result.flag_metadata) == {"owner": "payments", "version": 3}


def test_evaluation_of_a_non_mapping_context_reports_general_error_instead_of_raising() -> None:
    engine = fader_engine.load(doc({"f": boolean_flag(rules=[rule(clause("a", "in", "x"))])}))
    result = engine.evaluate("f", "not a mapping")  # type: ignore[arg-type]
    assert (result.reason, result.error_code) == (Reason.ERROR, ErrorCode.GENERAL)


def test_generated_code_treats_hostile_keys_and_values_as_data() -> None:
    hostile = "x'); import os; os._exit(1); ('"
    flag = boolean_flag(rules=[rule(clause("email", "ends_with", hostile))])
    engine = fader_engine.load(doc({"f": flag}))
    assert engine.evaluate("f", {"email": "a" + hostile}).value is True
