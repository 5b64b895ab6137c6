"""The document limits (``docs/flag-format.md``, "Limits"): each one accepts a document at the
limit and rejects one past it with a problem at the exact path, never a ``RecursionError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fader_engine.errors import ConfigurationError, Problem
from fader_engine.parse import parse_document
from fader_engine.parse_limits import (
    MAX_CLAUSE_VALUES,
    MAX_CLAUSES,
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_SIZE,
    MAX_RULES,
    MAX_SEGMENT_KEYS,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
    MAX_VARIANTS,
)
from fader_engine.serialize import to_json

ROOT = Path(__file__).resolve().parents[3]


def document() -> dict[str, Any]:
    return {
        "format": "fader/v1",
        "segments": {"staff": {"included": ["u1"], "rules": []}},
        "flags": {
            "x": {
                "type": "object",
                "variants": {"on": {"a": 1}, "off": {}},
                "offVariant": "off",
                "rules": [
                    {
                        "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                        "variant": "on",
                    }
                ],
                "default": {"variant": "off"},
            }
        },
    }


def nested(levels: int) -> Any:
    """A value of `levels` nested arrays around 1 (built without recursion)."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def problems_of(doc: Any) -> tuple[Problem, ...]:
    with pytest.raises(ConfigurationError) as info:
        parse_document(doc)
    return info.value.problems


def only_problem(doc: Any) -> Problem:
    problems = problems_of(doc)
    assert len(problems) == 1, problems
    return problems[0]


def test_limits_are_the_documented_ones() -> None:
    text = (ROOT / "docs" / "flag-format.md").read_text()
    for limit in (
        MAX_VALUE_DEPTH,
        MAX_DOCUMENT_DEPTH,
        MAX_STRING_LENGTH,
        MAX_DOCUMENT_SIZE,
        MAX_VARIANTS,
        MAX_RULES,
        MAX_CLAUSES,
        MAX_CLAUSE_VALUES,
        MAX_SEGMENT_KEYS,
    ):
        assert f"| {limit:,} |" in text, f"docs/flag-format.md does not list the limit {limit:,}"


def test_a_variant_value_nests_up_to_the_limit() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = nested(MAX_VALUE_DEPTH)
    parsed = parse_document(doc)
    assert parsed.flags["x"].variants["on"] == nested(MAX_VALUE_DEPTH)
    assert parse_document(json.loads(json.dumps(to_json(parsed)))) == parsed


def test_a_variant_value_nested_one_level_deeper_is_rejected_at_that_level() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = {"config": nested(MAX_VALUE_DEPTH)}
    problem = only_problem(doc)
    assert problem.path == "/flags/x/variants/on/config" + "/0" * (MAX_VALUE_DEPTH - 1)
    assert f"at most {MAX_VALUE_DEPTH} levels" in problem.message
    assert "variant 'on' of flag 'x'" in problem.message


def test_a_variant_nested_260_levels_is_rejected_not_stored() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = nested(260)
    problem = only_problem(doc)
    assert problem.path.startswith("/flags/x/variants/on/0/0")
    assert "levels" in problem.message


def test_a_document_nested_100000_levels_is_a_problem_not_a_recursion_error() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = nested(100_000)
    doc["metadata"] = {"deep": nested(100_000)}
    problems = problems_of(doc)
    assert {p.path.split("/0")[0] for p in problems} == {"/metadata/deep", "/flags/x/variants/on"}
    assert all(f"more than {MAX_DOCUMENT_DEPTH} levels" in p.message for p in problems)
    deepest = max(p.path.count("/") for p in problems)
    assert deepest == MAX_DOCUMENT_DEPTH


def test_many_too_deep_values_give_a_bounded_list_of_problems() -> None:
    doc = document()
    doc["metadata"] = {f"k{i}": nested(200) for i in range(1000)}
    problems = problems_of(doc)
    assert 1 <= len(problems) <= 20


def test_document_metadata_nests_at_most_the_value_limit() -> None:
    doc = document()
    doc["metadata"] = {"project": "p", "tree": nested(MAX_VALUE_DEPTH - 1)}
    assert parse_document(doc).metadata["tree"] == nested(MAX_VALUE_DEPTH - 1)
    doc["metadata"] = {"project": "p", "tree": nested(MAX_VALUE_DEPTH)}
    problem = only_problem(doc)
    assert problem.path == "/metadata/tree" + "/0" * (MAX_VALUE_DEPTH - 1)


@pytest.mark.parametrize(
    ("where", "limit", "path"),
    [
        ("variants", MAX_VARIANTS, "/flags/x/variants"),
        ("rules", MAX_RULES, "/flags/x/rules"),
        ("clauses", MAX_CLAUSES, "/flags/x/rules/0/clauses"),
        ("values", MAX_CLAUSE_VALUES, "/flags/x/rules/0/clauses/0/values"),
        ("included", MAX_SEGMENT_KEYS, "/segments/staff/included"),
        ("excluded", MAX_SEGMENT_KEYS, "/segments/staff/excluded"),
        ("segment rules", MAX_RULES, "/segments/staff/rules"),
    ],
)
def test_counts_are_accepted_at_the_limit_and_rejected_past_it(
    where: str, limit: int, path: str
) -> None:
    def with_items(count: int) -> dict[str, Any]:
        doc = document()
        flag = doc["flags"]["x"]
        segment = doc["segments"]["staff"]
        if where == "variants":
            flag["variants"] = {f"v{i}": {} for i in range(count - 2)} | {"on": {}, "off": {}}
        elif where == "rules":
            flag["rules"] = [{"clauses": [], "variant": "on"}] * count
        elif where == "clauses":
            flag["rules"][0]["clauses"] = [{"attribute": "a", "op": "exists"}] * count
        elif where == "values":
            flag["rules"][0]["clauses"][0]["values"] = [f"p{i}" for i in range(count)]
        elif where == "segment rules":
            segment["rules"] = [{"clauses": []}] * count
        else:
            segment[where] = [f"user-{i}" for i in range(count)]
        return doc

    parse_document(with_items(limit))
    problem = only_problem(with_items(limit + 1))
    assert problem.path == path
    assert f"{limit + 1:,}" in problem.message
    assert f"at most {limit:,}" in problem.message


def test_a_string_longer_than_the_limit_is_rejected_where_it_is() -> None:
    doc = document()
    doc["flags"]["x"]["rules"][0]["clauses"][0]["values"] = ["a" * MAX_STRING_LENGTH]
    parse_document(doc)
    doc["flags"]["x"]["rules"][0]["clauses"][0]["values"] = ["ok", "a" * (MAX_STRING_LENGTH + 1)]
    problem = only_problem(doc)
    assert problem.path == "/flags/x/rules/0/clauses/0/values/1"
    assert f"{MAX_STRING_LENGTH + 1:,} characters" in problem.message


def test_a_key_longer_than_the_limit_is_rejected_at_its_object() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = {"k" * (MAX_STRING_LENGTH + 1): 1}
    problem = only_problem(doc)
    assert problem.path == "/flags/x/variants/on"
    assert "'kkkk" in problem.message


def test_a_document_larger_than_the_limit_is_rejected_before_it_is_read() -> None:
    doc = document()
    count = MAX_DOCUMENT_SIZE // MAX_STRING_LENGTH + 1
    doc["segments"]["staff"]["included"] = ["u" * (MAX_STRING_LENGTH - 10)] * count
    problem = only_problem(doc)
    assert problem.path == ""
    assert f"{MAX_DOCUMENT_SIZE:,} characters" in problem.message


def test_documents_from_the_repository_are_within_the_limits() -> None:
    parse_document(json.loads((ROOT / "examples" / "demo.json").read_text()))


def test_a_nul_character_in_any_string_is_rejected_where_it_is() -> None:
    doc = document()
    doc["flags"]["x"]["variants"]["on"] = {"a\x00": "b", "c": ["d\x00"]}
    doc["segments"]["staff"]["included"] = ["u1", "u\x002"]
    problems = problems_of(doc)
    assert sorted(p.path for p in problems) == [
        "/flags/x/variants/on",
        "/flags/x/variants/on/c/0",
        "/segments/staff/included/1",
    ]
    assert all("NUL character" in p.message for p in problems)
