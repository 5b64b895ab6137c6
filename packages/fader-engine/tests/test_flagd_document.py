"""Loading flagd documents: the flagd-schemas fixtures, validation messages, reasons and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fader_engine import ConfigurationError, ErrorCode, Reason
from fader_engine.flagd import load_flagd, validate_flagd


def _schemas_dir() -> Path:
    env = os.environ.get("FADER_CONFORMANCE_DIR")
    base = (
        Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance"
    )
    return (base / "flagd-schemas" / "json").resolve()


SCHEMAS = _schemas_dir()


def _files(folder: str) -> list[Path]:
    return sorted((SCHEMAS / folder).glob("*.json")) if SCHEMAS.is_dir() else []


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _flag(targeting: Any = None, **fields: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {"state": "ENABLED", "variants": {"on": True, "off": False}}
    flag["defaultVariant"] = "off"
    if targeting is not None:
        flag["targeting"] = targeting
    flag.update(fields)
    return {"flags": {"f": flag}}


def _messages(document: Any) -> list[str]:
    return [str(problem) for problem in validate_flagd(document)]


@pytest.mark.parametrize("path", _files("test/flags/negative"), ids=lambda p: p.name)
def test_schema_negative_flag_files_are_rejected_with_problems(path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_flagd(_load(path))
    assert raised.value.problems
    assert all(problem.message for problem in raised.value.problems)


@pytest.mark.parametrize(
    "path", _files("test/flags/positive") + _files("examples"), ids=lambda p: p.name
)
def test_schema_positive_flag_files_and_examples_load(path: Path) -> None:
    assert len(load_flagd(_load(path))) > 0


NULL_AT_RUN_TIME = {
    "invalid-ends-with-param.json",
    "invalid-starts-with-param.json",
    "sem-ver-invalid-ver-expression.json",
}
"""Schema-invalid literals that flagd's own examples/full.json uses; they evaluate to null."""


@pytest.mark.parametrize("path", _files("test/targeting/negative"), ids=lambda p: p.name)
def test_schema_negative_targeting_rules_are_rejected_when_strict(path: Path) -> None:
    problems = validate_flagd(_flag(_load(path)))
    if path.name in NULL_AT_RUN_TIME:
        assert problems == []
    else:
        assert problems


@pytest.mark.parametrize("path", _files("test/targeting/positive"), ids=lambda p: p.name)
def test_schema_positive_targeting_rules_compile(path: Path) -> None:
    document = _flag(_load(path))
    document["$evaluators"] = {"some-ref": True}
    assert validate_flagd(document) == []


def test_invalid_state_names_flag_and_allowed_values() -> None:
    (message,) = _messages(_flag(state="ON"))
    assert message.startswith("/flags/f/state:")
    assert "'ON'" in message
    assert "ENABLED" in message


def test_default_variant_must_be_one_of_the_variants() -> None:
    (message,) = _messages(_flag(defaultVariant="maybe"))
    assert "/flags/f/defaultVariant" in message
    assert "'maybe'" in message
    assert "'on'" in message


def test_mixed_variant_types_are_rejected_as_in_the_flagd_schema() -> None:
    (message,) = _messages(_flag(variants={"on": True, "off": "false"}))
    assert "mixes variant types" in message
    assert "on: boolean" in message


def test_unknown_operator_is_reported_at_its_path() -> None:
    (message,) = _messages(_flag({"if": [{"matches": [1, 2]}, "on"]}))
    assert message.startswith("/flags/f/targeting/if/0/matches:")
    assert "unknown operator 'matches'" in message


def test_ref_to_missing_evaluator_lists_the_defined_ones() -> None:
    document = _flag({"if": [{"$ref": "nope"}, "on"]})
    document["$evaluators"] = {"is_admin": {"==": [{"var": "role"}, "admin"]}}
    (message,) = _messages(document)
    assert "'nope'" in message
    assert "is_admin" in message


def test_evaluator_cycle_is_reported() -> None:
    document = _flag({"$ref": "a"})
    document["$evaluators"] = {"a": {"!": {"$ref": "b"}}, "b": {"!": {"$ref": "a"}}}
    assert any("cycle" in message for message in _messages(document))


def test_malformed_fractional_bucket_is_rejected() -> None:
    (message,) = _messages(_flag({"fractional": [{"var": "email"}, "on"]}))
    assert "[variant] or [variant, weight]" in message


def test_flag_metadata_values_must_be_primitives() -> None:
    (message,) = _messages(_flag(metadata={"owner": {"team": "x"}}))
    assert message.startswith("/flags/f/metadata/owner:")


def test_flagd_compatible_loading_keeps_an_invalid_flag_as_parse_error() -> None:
    engine = load_flagd(_flag({"nope": [1]}), strict=False)
    result = engine.evaluate("f", {})
    assert result.reason is Reason.ERROR
    assert result.error_code is ErrorCode.PARSE_ERROR


def test_flagd_compatible_loading_still_rejects_structural_problems() -> None:
    with pytest.raises(ConfigurationError):
        load_flagd(_flag(state="MAYBE"), strict=False)


def test_reasons_follow_flagd() -> None:
    targeted = {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", None]}
    engine = load_flagd(
        {
            "flags": {
                "static": _flag()["flags"]["f"],
                "targeted": _flag(targeted)["flags"]["f"],
                "disabled": _flag(state="DISABLED")["flags"]["f"],
                "no-default": {"state": "ENABLED", "variants": {"a": 1}},
                "unknown-variant": _flag({"if": [True, "maybe"]})["flags"]["f"],
            }
        }
    )
    assert engine.evaluate("static", {}).reason is Reason.STATIC
    assert engine.evaluate("targeted", {"tier": "gold"}).reason is Reason.TARGETING_MATCH
    assert engine.evaluate("targeted", {"tier": "tin"}).reason is Reason.DEFAULT
    assert engine.evaluate("disabled", {}).reason is Reason.DISABLED
    missing = engine.evaluate("no-default", {})
    assert (missing.value, missing.variant, missing.reason) == (None, None, Reason.DEFAULT)
    assert engine.evaluate("unknown-variant", {}).error_code is ErrorCode.GENERAL


def test_flag_metadata_overrides_flag_set_metadata() -> None:
    document = _flag(metadata={"owner": "flag"})
    document["metadata"] = {"owner": "set", "flagSetId": "web"}
    result = load_flagd(document).evaluate("f", {})
    assert dict(result.flag_metadata) == {"owner": "flag", "flagSetId": "web"}


def test_timestamp_comes_from_the_injected_clock() -> None:
    rule = {"if": [{">": [{"var": "$flagd.timestamp"}, 1000]}, "on", "off"]}
    assert load_flagd(_flag(rule), clock=lambda: 2000.5).evaluate("f", {}).variant == "on"
    assert load_flagd(_flag(rule), clock=lambda: 10.0).evaluate("f", {}).variant == "off"
