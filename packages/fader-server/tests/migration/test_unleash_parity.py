"""Every fixture flag answers exactly what Unleash's own Python SDK answers, for many contexts."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from unleash_support import NONDETERMINISTIC, contexts, load_fixture, parity

from fader_server.migration.unleash import SOURCE

pytest.importorskip("UnleashClient", reason="Unleash's SDK (the migrate extra) is not installed")

FIXTURES = ["strategies.json", "constraints.json", "variants.json", "dependencies.json"]
CONTEXTS = 1200
SINGLE_ANSWER = {
    # Off, always on, never matching, or a dependency that never holds: one answer for everyone.
    "always-on",
    "disabled-flag",
    "no-strategies",
    "no-strategies-disabled",
    "rollout-random-full",
    "rollout-random-none",
    "rollout-zero",
    "rollout-full-default",
    "gradual-user-no-group",
    "gradual-random-full",
    "gradual-random-none",
    "gradual-random-one",
    "remote-no-ips",
    "in-empty",
    "disabled-with-variants",
    "child-of-off",
    "child-of-missing",
    "grandchild",
    "child-of-off-negated",
    "hosts",
    "parent-off",
}


@pytest.mark.parametrize("name", FIXTURES)
def test_every_translated_flag_agrees_with_the_unleash_sdk(name: str) -> None:
    data = load_fixture(name)
    translation = SOURCE.translate(data, "production")
    evaluator = SOURCE.evaluator(data)
    try:
        rows = parity(translation, evaluator, contexts(seed=len(name), count=CONTEXTS))
    finally:
        evaluator.close()
    assert rows, "no flag was translated"
    for row in rows:
        assert not row.disagreements, (row.flag, row.disagreements[:3])
        assert row.agreed + row.nondeterministic == row.contexts
        # Deterministic answers dominate, and every flag is exercised, not just "off".
        assert row.nondeterministic < row.contexts * 0.4, (row.flag, row.nondeterministic)
        if row.flag not in SINGLE_ANSWER:
            assert len(row.answers) >= 2, (row.flag, row.answers)


def test_the_parity_loop_catches_a_translation_that_is_one_percent_off() -> None:
    data = load_fixture("strategies.json")
    translation = SOURCE.translate(data, "production")
    document = copy.deepcopy(translation.document)
    clause = document["flags"]["rollout-user"]["rules"][0]["clauses"][0]
    assert clause["values"] == ["shared-group", 25]
    clause["values"] = ["shared-group", 26]
    evaluator = SOURCE.evaluator(data)
    try:
        rows = parity(
            replace(translation, document=document, keys={"rollout-user": "rollout-user"}),
            evaluator,
            [{"targetingKey": f"m-{i}"} for i in range(3000)],
        )
    finally:
        evaluator.close()
    assert rows[0].disagreements


def test_answers_that_depend_on_chance_or_the_host_are_reported_not_compared() -> None:
    data = load_fixture("strategies.json")
    evaluator = SOURCE.evaluator(data)
    try:
        chance = evaluator.answer("rollout-default-stickiness", {})
        host = evaluator.answer("hosts", {"targetingKey": "u", "hostname": "web-1"})
        known = evaluator.answer("rollout-default-stickiness", {"sessionId": "s-1"})
    finally:
        evaluator.close()
    assert chance.variant is None
    assert chance.detail.startswith(NONDETERMINISTIC)
    assert host.variant is None
    assert "host" in host.detail
    assert known.variant == "disabled"
    assert isinstance(known.value, bool)
