"""Every fixture flag answers exactly what LaunchDarkly's own SDK answers, for many contexts."""

from __future__ import annotations

import pytest
from launchdarkly_support import contexts, load_fixture, parity

from fader_server.migration.launchdarkly import SOURCE
from fader_server.migration.launchdarkly.clauses import OPERATORS

pytest.importorskip("ldclient", reason="the LaunchDarkly SDK (the migrate extra) is not installed")

FIXTURES = [
    "operators.json",
    "targeting.json",
    "rollouts.json",
    "segments.json",
    "relay-put.json",
    "unsupported.json",
]
CONTEXTS = 1500
SINGLE_ANSWER = {
    # One variation, off, or a prerequisite that never passes: one answer for everyone.
    "off-flag",
    "prereq-off",
    "needs-missing-prereq",
    "Simple_Value",
    "simple-json",
    "needs-off-prereq",
}


@pytest.mark.parametrize("name", FIXTURES)
def test_every_translated_flag_agrees_with_the_launchdarkly_sdk(name: str) -> None:
    data = load_fixture(name)
    translation = SOURCE.translate(data, "production")
    evaluator = SOURCE.evaluator(data)
    try:
        rows = parity(translation, evaluator, contexts(seed=len(name), count=CONTEXTS))
    finally:
        evaluator.close()
    assert rows, "no flag was translated"
    for key, row in rows.items():
        assert row.agreed == row.contexts == CONTEXTS, (key, row.disagreements)
        if key not in SINGLE_ANSWER:
            # The contexts reach more than one answer of every flag: agreement means something.
            assert len(row.answers) >= 2, (key, row.answers)


def _clauses(node: object) -> list[dict[str, object]]:
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "op" in item and "values" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def test_the_fixtures_cover_every_operator_negated_and_not() -> None:
    clauses = [c for name in FIXTURES for c in _clauses(load_fixture(name))]
    assert {c["op"] for c in clauses} >= set(OPERATORS)
    assert {c["op"] for c in clauses if c.get("negate")} >= {
        "in",
        "contains",
        "matches",
        "lessThan",
        "before",
        "after",
        "semVerLessThan",
        "segmentMatch",
    }
