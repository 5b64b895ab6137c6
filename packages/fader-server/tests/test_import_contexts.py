"""The contexts an import is verified with: generated from a document's rules so that every rule
and every split arm is reached, and read from JSON lines as hostile input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fader_engine.formats import load
from fader_server.migration import contexts, flagd_source

FIXTURES = Path(__file__).parent / "import_fixtures"

# Every operator the generator knows, each behind its own rule and variant, plus a segment
# reached by included keys and one by its rules, a negated clause and a weighted split.
DOCUMENT: dict[str, Any] = {
    "format": "fader/v1",
    "segments": {
        "beta": {"included": ["tester-1", "tester-2"]},
        "dutch": {
            "rules": [{"clauses": [{"attribute": "geo.country", "op": "in", "values": ["NL"]}]}]
        },
    },
    "flags": {
        "every-op": {
            "type": "string",
            "variants": {
                v: v
                for v in [
                    "in",
                    "pre",
                    "suf",
                    "sub",
                    "lt",
                    "gte",
                    "ver",
                    "before",
                    "after",
                    "ip",
                    "exists",
                    "seg",
                    "seg-rule",
                    "not",
                    "re",
                    "split-a",
                    "split-b",
                    "split-c",
                ]
            },
            "offVariant": "in",
            "rules": [
                {
                    "clauses": [{"attribute": "plan", "op": "in", "values": ["pro", "team"]}],
                    "variant": "in",
                },
                {
                    "clauses": [{"attribute": "email", "op": "starts_with", "values": ["admin@"]}],
                    "variant": "pre",
                },
                {
                    "clauses": [
                        {"attribute": "email", "op": "ends_with", "values": ["@corp.example"]}
                    ],
                    "variant": "suf",
                },
                {
                    "clauses": [{"attribute": "ua", "op": "contains", "values": ["Mobile"]}],
                    "variant": "sub",
                },
                {"clauses": [{"attribute": "age", "op": "lt", "values": [18]}], "variant": "lt"},
                {"clauses": [{"attribute": "age", "op": "gte", "values": [65]}], "variant": "gte"},
                {
                    "clauses": [{"attribute": "app", "op": "semver_gt", "values": ["3.1.0"]}],
                    "variant": "ver",
                },
                {
                    "clauses": [
                        {"attribute": "signup", "op": "before", "values": ["2020-01-01T00:00:00Z"]}
                    ],
                    "variant": "before",
                },
                {
                    "clauses": [{"attribute": "seen", "op": "after", "values": [1900000000]}],
                    "variant": "after",
                },
                {
                    "clauses": [{"attribute": "ip", "op": "ip_in", "values": ["10.0.0.0/8"]}],
                    "variant": "ip",
                },
                {"clauses": [{"attribute": "vip", "op": "exists"}], "variant": "exists"},
                {"clauses": [{"op": "in_segment", "values": ["beta"]}], "variant": "seg"},
                {"clauses": [{"op": "in_segment", "values": ["dutch"]}], "variant": "seg-rule"},
                {
                    "clauses": [
                        {"attribute": "region", "op": "in", "values": ["eu"], "negate": True}
                    ],
                    "variant": "not",
                },
                {
                    "clauses": [{"attribute": "ref", "op": "matches", "values": ["newsletter"]}],
                    "variant": "re",
                },
            ],
            "default": {
                "split": {
                    "weights": [
                        {"variant": "split-a", "weight": 20},
                        {"variant": "split-b", "weight": 30},
                        {"variant": "split-c", "weight": 50},
                    ]
                }
            },
        },
        "by-org": {
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "offVariant": "off",
            "default": {
                "split": {
                    "by": "org.id",
                    "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}],
                }
            },
        },
    },
}


def served(document: dict[str, Any], found: list[dict[str, Any]]) -> dict[str, set[str]]:
    engine = load(document)
    return {
        key: {str(engine.evaluate(key, context).variant) for context in found}
        for key in document["flags"]
    }


def test_generated_contexts_serve_every_variant_of_every_rule_and_split_arm() -> None:
    found = contexts.generate(DOCUMENT, 300, seed=3)
    assert len(found) == 300
    reached = served(DOCUMENT, found)
    assert reached["every-op"] == set(DOCUMENT["flags"]["every-op"]["variants"])
    # and a few contexts without the split's seed, which is a case of its own (an error)
    assert reached["by-org"] == {"on", "off", "None"}


def test_generation_is_deterministic_per_seed() -> None:
    assert contexts.generate(DOCUMENT, 50, seed=9) == contexts.generate(DOCUMENT, 50, seed=9)
    assert contexts.generate(DOCUMENT, 50, seed=9) != contexts.generate(DOCUMENT, 50, seed=10)


def test_a_translated_flagd_document_is_covered_too() -> None:
    data = json.loads((FIXTURES / "flagd-shop.json").read_text())
    translation = flagd_source.translate(data, "edge", bucketing="v3")
    reached = served(translation.document, contexts.generate(translation.document, 200))
    for key, flag in translation.document["flags"].items():
        assert reached[key] == set(flag["variants"]), key


@pytest.mark.parametrize("count", [0, contexts.MAX_CONTEXTS + 1])
def test_generate_refuses_counts_out_of_bounds(count: int) -> None:
    with pytest.raises(contexts.ContextsError, match="between 1 and"):
        contexts.generate(DOCUMENT, count)


def test_jsonl_reads_objects_and_skips_blank_lines() -> None:
    lines = ['{"targetingKey": "u1", "plan": "pro"}\n', "\n", '{"targetingKey": "u2"}\n']
    assert contexts.read_jsonl(lines) == [
        {"targetingKey": "u1", "plan": "pro"},
        {"targetingKey": "u2"},
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "contexts:2: a context is a JSON object"),
        ("{not json", "contexts:2: not valid JSON"),
        ('{"targetingKey": 7}', "contexts:2: targetingKey must be a string"),
        ('{"a": 1, "a": 2}', "contexts:2: .*appears twice"),
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "contexts:2: the context nests more than"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "contexts:2: the context nests too deeply"),
        ('{"a": "' + "x" * contexts.MAX_LINE_CHARS + '"}', "contexts:2: the line is longer"),
    ],
)
def test_jsonl_problems_name_the_line(line: str, message: str) -> None:
    with pytest.raises(contexts.ContextsError, match=message):
        contexts.read_jsonl(['{"targetingKey": "ok"}', line])


def test_jsonl_refuses_more_contexts_than_a_verification_runs() -> None:
    lines = ('{"targetingKey": "u"}' for _ in range(contexts.MAX_CONTEXTS + 1))
    with pytest.raises(
        contexts.ContextsError, match=f"contexts:{contexts.MAX_CONTEXTS + 1}: at most"
    ):
        contexts.read_jsonl(lines)
