"""Random LaunchDarkly data, random contexts: Fader answers what LaunchDarkly's SDK answers.

The fixtures cover each construct on purpose; this covers their combinations by chance: random
clauses (every operator, negated or not, on custom and built-in attributes, with and without a
context kind, values of every type), random segments (lists by kind, exclusions, nested
segments, weights of 0 and 100%), individual targets of several kinds and prerequisite chains
(off flags, missing flags). Contexts stay inside the context convention (no arrays: they are
in scope only for ``in``, which the fixtures cover).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from launchdarkly_support import fader_answer

import fader_engine
from fader_server.migration.launchdarkly import SOURCE

pytest.importorskip("ldclient", reason="the LaunchDarkly SDK (the migrate extra) is not installed")

OPS = ["in", "endsWith", "startsWith", "matches", "contains", "lessThan", "lessThanOrEqual",
       "greaterThan", "greaterThanOrEqual", "before", "after", "semVerEqual", "semVerLessThan",
       "semVerGreaterThan"]  # fmt: skip
ATTRIBUTES = ["a", "b", "key", "kind", "name", "anonymous", "/n/x", "targetingKey", "_meta"]
STRINGS = ["x", "xy", "yx", "", "user", "org", "abc", "1.2.3", "1.2", "v1.2.3", "2",
           "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5+01:00", "^x", "y$", "\\d+", "a.c",
           "X", "\u00e9", "10", "k1"]  # fmt: skip
NUMBERS = [0, 1, 1.0, 1.5, -1, 10, 1704067200000, 1704067200000.5, 2, 1e12]
KEYS = ["x", "user", "k1", "k2", "1.2.3", "acme"]
KINDS = ["user", "org", "device"]


def _value(rng: random.Random) -> Any:
    return rng.choice([rng.choice(STRINGS), rng.choice(NUMBERS), rng.choice([True, False])])


def _clause(rng: random.Random, segments: list[str]) -> dict[str, Any]:
    if segments and rng.random() < 0.15:
        clause: dict[str, Any] = {
            "attribute": "",
            "op": "segmentMatch",
            "values": rng.sample(segments, rng.randint(1, min(2, len(segments)))),
        }
    else:
        clause = {
            "attribute": rng.choice(ATTRIBUTES),
            "op": rng.choice(OPS),
            "values": [_value(rng) for _ in range(rng.randint(0, 3))],
        }
        if rng.random() < 0.4:
            clause["contextKind"] = rng.choice(KINDS[:2])
    if rng.random() < 0.4:
        clause["negate"] = True
    return clause


def _rules(rng: random.Random, segments: list[str], serve: bool) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 3)):
        rule: dict[str, Any] = {
            "clauses": [_clause(rng, segments) for _ in range(rng.randint(1, 3))]
        }
        if serve:
            rule["variation"] = rng.randrange(3)
        elif rng.random() < 0.2:
            rule["weight"] = rng.choice([0, 100000])
            if rng.random() < 0.5:
                rule["rolloutContextKind"] = rng.choice(KINDS)
        rules.append(rule)
    return rules


def _targets(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"contextKind": rng.choice(KINDS), "values": rng.sample(KEYS, rng.randint(0, 3))}
        for _ in range(rng.randint(0, 2))
    ]


def _data(rng: random.Random) -> dict[str, Any]:
    segments: dict[str, Any] = {}
    for i in range(8):
        segments[f"s{i}"] = {
            "key": f"s{i}",
            "version": 1,
            "salt": "salt",
            "included": rng.sample(KEYS, rng.randint(0, 2)),
            "excluded": rng.sample(KEYS, rng.randint(0, 2)),
            "includedContexts": _targets(rng),
            "excludedContexts": _targets(rng),
            "rules": _rules(rng, list(segments), serve=False),
        }
    flags: dict[str, Any] = {}
    for i in range(60):
        flag: dict[str, Any] = {
            "key": f"f{i}",
            "version": 1,
            "on": rng.random() < 0.9,
            "salt": "s",
            "variations": ["zero", "one", "two"],
            "offVariation": rng.randrange(3),
            "targets": [
                {"values": rng.sample(KEYS, 2), "variation": v}
                for v in range(3)
                if rng.random() < 0.3
            ],
            "rules": _rules(rng, list(segments), serve=True),
            "fallthrough": {"variation": rng.randrange(3)},
        }
        if rng.random() < 0.5:
            flag["contextTargets"] = [
                {
                    "contextKind": rng.choice(KINDS),
                    "values": rng.sample(KEYS, 2),
                    "variation": rng.randrange(3),
                }
                for _ in range(rng.randint(1, 3))
            ]
        if flags and rng.random() < 0.3:
            flag["prerequisites"] = [
                {"key": rng.choice([*flags, "missing"]), "variation": rng.randrange(3)}
            ]
        flags[f"f{i}"] = flag
    return {"flags": flags, "segments": segments}


def _context(rng: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {"targetingKey": rng.choice(KEYS)}
    if rng.random() < 0.6:
        ctx["kind"] = rng.choice(KINDS)
    for name in ("a", "b", "_meta", "key"):
        if rng.random() < 0.5:
            ctx[name] = _value(rng) if rng.random() < 0.9 else {"x": _value(rng)}
    if rng.random() < 0.5:
        ctx["name"] = rng.choice(STRINGS)
    if rng.random() < 0.5:
        ctx["anonymous"] = rng.random() < 0.5
    if rng.random() < 0.5:
        ctx["n"] = {"x": _value(rng)}
    return ctx


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_data_agrees_with_the_launchdarkly_sdk(seed: int) -> None:
    rng = random.Random(seed)
    data = _data(rng)
    translation = SOURCE.translate(data, "production")
    # Only the constructs the generator makes on purpose may be unsupported.
    for entry in translation.unsupported:
        assert "off variation" in entry.detail or "is not imported" in entry.detail, entry
    assert len(translation.keys) >= 40
    engine = fader_engine.load(translation.document)
    contexts = [_context(rng) for _ in range(150)]
    evaluator = SOURCE.evaluator(data)
    disagreements = []
    try:
        for source_key, fader_key in translation.keys.items():
            for ctx in contexts:
                theirs = evaluator.answer(source_key, ctx)
                ours = fader_answer(translation, engine, fader_key, ctx)
                if not theirs.agrees(ours):
                    disagreements.append((source_key, ctx, theirs, ours))
    finally:
        evaluator.close()
    assert disagreements[:5] == []
