"""JsonLogic semantics of the compiled rules, as flagd's evaluators apply them."""

from __future__ import annotations

from typing import Any

import pytest

from fader_engine import BucketingAlgorithm
from fader_engine.flagd.document import OPERATORS
from fader_engine.flagd.jsonlogic import RuleCompiler, RuleError


def run(rule: Any, data: Any = None) -> Any:
    compiler = RuleCompiler(OPERATORS, {}, BucketingAlgorithm.V2)
    return compiler.compile(rule, "")({} if data is None else data)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, False),
        ("", False),
        (None, False),
        ([], False),
        ("0", True),
        ("false", True),
        ({}, True),
        ([0], True),
        (-1, True),
    ],
)
def test_truthiness_follows_jsonlogic(value: Any, expected: bool) -> None:
    assert run({"!!": [value]}) is expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (1, "1", True),
        (0, "", True),
        (True, 1, True),
        (None, None, True),
        (None, 0, False),
        ("a", "b", False),
        (1.0, 1, True),
    ],
)
def test_loose_equality_coerces_like_javascript(left: Any, right: Any, expected: bool) -> None:
    assert run({"==": [left, right]}) is expected
    assert run({"!=": [left, right]}) is not expected


def test_strict_equality_does_not_coerce() -> None:
    assert run({"===": [1, "1"]}) is False
    assert run({"===": [1, 1.0]}) is True
    assert run({"!==": [True, 1]}) is True


def test_in_tests_substrings_and_list_membership() -> None:
    assert run({"in": ["Spring", "Springfield"]}) is True
    assert run({"in": ["b", ["a", "b"]]}) is True
    assert run({"in": ["1", [1, 2]]}) is False
    assert run({"in": ["x", 42]}) is False


def test_and_or_return_the_deciding_operand() -> None:
    assert run({"or": [0, "", "first", "second"]}) == "first"
    assert run({"or": [0, ""]}) == ""
    assert run({"and": [1, "a", 3]}) == 3
    assert run({"and": [1, 0, 3]}) == 0


def test_missing_attributes_read_as_null_or_the_default() -> None:
    assert run({"var": "user.name"}, {"user": {}}) is None
    assert run({"var": ["user.name", "anon"]}, {}) == "anon"
    assert run({"var": "a.1"}, {"a": ["x", "y"]}) == "y"
    assert run({"var": ""}, {"k": 1}) == {"k": 1}
    assert run({"missing": ["a", "b"]}, {"a": 1}) == ["b"]
    assert run({"missing_some": [1, ["a", "b"]]}, {"a": 1}) == []


def test_if_chains_else_ifs() -> None:
    rule = {"if": [{"<": [{"var": "t"}, 0]}, "cold", {"<": [{"var": "t"}, 20]}, "mild", "hot"]}
    assert [run(rule, {"t": t}) for t in (-5, 10, 30)] == ["cold", "mild", "hot"]
    assert run({"if": [False, "x"]}) is None


def test_comparisons_support_between_and_numeric_strings() -> None:
    assert run({"<": [1, 2, 3]}) is True
    assert run({"<=": [1, 1, 0]}) is False
    assert run({">": ["10", 9]}) is True
    assert run({">": ["b", "a"]}) is True
    assert run({"<": ["x", 1]}) is False


def test_arithmetic_and_strings() -> None:
    assert run({"+": [1, "2", 3.5]}) == 6.5
    assert run({"-": [5]}) == -5
    assert run({"/": [1, 0]}) is None
    assert run({"%": [-7, 3]}) == -1
    assert run({"max": [1, 9, 3]}) == 9
    assert run({"cat": ["v", 1, None, True]}) == "v1true"
    assert run({"substr": ["jsonlogic", -5, 3]}) == "log"
    assert run({"merge": [[1], 2, [3, [4]]]}) == [1, 2, 3, [4]]


def test_array_operations_scope_data_to_each_element() -> None:
    data = {"xs": [1, 2, 3]}
    assert run({"map": [{"var": "xs"}, {"*": [{"var": ""}, 2]}]}, data) == [2, 4, 6]
    assert run({"filter": [{"var": "xs"}, {">": [{"var": ""}, 1]}]}, data) == [2, 3]
    reducer = {"+": [{"var": "current"}, {"var": "accumulator"}]}
    assert run({"reduce": [{"var": "xs"}, reducer, 0]}, data) == 6
    assert run({"all": [[], True]}) is False
    assert run({"some": [{"var": "xs"}, {"==": [{"var": ""}, 2]}]}, data) is True


def test_flagd_string_operators_return_null_for_non_strings() -> None:
    assert run({"starts_with": [{"var": "id"}, "ab"]}, {"id": "abc"}) is True
    assert run({"ends_with": [{"var": "id"}, "bc"]}, {"id": 123}) is None


def test_sem_ver_accepts_prefixes_partials_and_ignores_build_metadata() -> None:
    assert run({"sem_ver": ["V1.2", "=", "1.2.0"]}) is True
    assert run({"sem_ver": ["1.0.0+build", "=", "1.0.0"]}) is True
    assert run({"sem_ver": ["2.0.0-alpha", "<", "2.0.0"]}) is True
    assert run({"sem_ver": ["3.1.0", "^", "3.0.0"]}) is True
    assert run({"sem_ver": ["3.1.0", "~", "3.0.0"]}) is False
    assert run({"sem_ver": ["1.0.0.0", "=", "1.0.0"]}) is None


def test_rule_objects_with_several_keys_are_rejected() -> None:
    with pytest.raises(RuleError, match="exactly one key"):
        run({"==": [1, 1], "!=": [1, 2]})
