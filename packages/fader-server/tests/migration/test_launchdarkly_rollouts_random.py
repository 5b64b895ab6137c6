"""Random LaunchDarkly rollouts put 100,000 random contexts where LaunchDarkly's SDK puts them.

Each flag gets a random rollout: 2 to 5 variations over up to 7 buckets (a variation may
come back, weights may be 0 or fail to sum to 100%), with or without a seed, a random salt and
key (upper case too: the bucketing prefix keeps the original key), bucketing by the key or an
attribute (top-level, a path, or a literal name with slashes), for users or another kind,
sometimes an experiment. Contexts mix kinds and bucketing values of every JSON type.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from launchdarkly_support import fader_answer

import fader_engine
from fader_server.migration.launchdarkly import SOURCE
from fader_server.migration.model import Answer

pytest.importorskip("ldclient", reason="the LaunchDarkly SDK (the migrate extra) is not installed")

FLAGS = 50
CONTEXTS_PER_FLAG = 2_000
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def _weights(rng: random.Random, count: int) -> list[int]:
    cuts = sorted(rng.randrange(100_001) for _ in range(count - 1))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100_000], strict=True)]
    if rng.random() < 0.2:  # LaunchDarkly tolerates sums other than 100%
        weights[rng.randrange(count)] += rng.choice([-1, 1]) * rng.randrange(1, 20_000)
        weights = [max(0, w) for w in weights]
    return weights


def _rollout(rng: random.Random, variations: int) -> dict[str, Any]:
    buckets = rng.randint(1, 7)
    rollout: dict[str, Any] = {
        "variations": [
            {"variation": rng.randrange(variations), "weight": w} for w in _weights(rng, buckets)
        ]
    }
    if rng.random() < 0.5:
        rollout["seed"] = rng.randrange(-(2**31), 2**31)
    kind = rng.choice([None, None, "user", "org"])
    if kind is not None:
        rollout["contextKind"] = kind
    by = rng.choice([None, None, "orgId", "key", "/company/id"])
    if by is not None:
        rollout["bucketBy"] = by  # "/company/id" is a path with a contextKind, else a name
    if rng.random() < 0.15:
        rollout["kind"] = "experiment"
    return rollout


def _flags(rng: random.Random) -> dict[str, Any]:
    flags = {}
    for i in range(FLAGS):
        key = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))) + f"-{i}"
        variations = rng.randint(2, 5)
        flag: dict[str, Any] = {
            "key": key,
            "version": 1,
            "on": True,
            "salt": "".join(rng.choice(ALPHABET + "é ") for _ in range(rng.randint(0, 16))),
            "variations": [f"value-{v}" for v in range(variations)],
            "offVariation": 0,
            "fallthrough": {"rollout": _rollout(rng, variations)},
        }
        if rng.random() < 0.4:
            flag["rules"] = [
                {
                    "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                    "rollout": _rollout(rng, variations),
                }
            ]
        flags[key] = flag
    return flags


def _context(rng: random.Random) -> dict[str, Any]:
    key = "".join(rng.choice(ALPHABET + "ü€") for _ in range(rng.randint(1, 20)))
    ctx: dict[str, Any] = {"targetingKey": key}
    kind = rng.choice([None, None, None, "user", "org"])
    if kind is not None:
        ctx["kind"] = kind
    values = [f"org-{rng.randrange(10**6)}", rng.randrange(-(10**12), 10**12), 1.5, True, None]
    if rng.random() < 0.8:
        ctx["orgId"] = rng.choice(values)
    if rng.random() < 0.5:
        ctx["company"] = {"id": rng.choice(values)}
    if rng.random() < 0.3:
        ctx["/company/id"] = rng.choice(values)
    if rng.random() < 0.4:
        ctx["plan"] = "pro"
    return {k: v for k, v in ctx.items() if v is not None}


def test_random_rollouts_agree_with_the_launchdarkly_sdk_for_100000_contexts() -> None:
    rng = random.Random(20261203)
    data = {"flags": _flags(rng), "segments": {}}
    translation = SOURCE.translate(data, "production")
    assert not translation.unsupported
    engine = fader_engine.load(translation.document)
    evaluator = SOURCE.evaluator(data)
    disagreements: list[tuple[str, dict[str, Any], Answer, Answer]] = []
    total = 0
    varied = 0
    try:
        for source_key, fader_key in translation.keys.items():
            seen: Counter[str | None] = Counter()
            for _ in range(CONTEXTS_PER_FLAG):
                ctx = _context(rng)
                theirs = evaluator.answer(source_key, ctx)
                ours = fader_answer(translation, engine, fader_key, ctx)
                seen[theirs.variant] += 1
                total += 1
                if not theirs.agrees(ours) and len(disagreements) < 10:
                    disagreements.append((source_key, ctx, theirs, ours))
            assert None not in seen, (source_key, seen)  # LaunchDarkly never failed
            varied += len(seen) >= 2
    finally:
        evaluator.close()
    assert total == FLAGS * CONTEXTS_PER_FLAG == 100_000
    assert disagreements == []
    assert varied >= FLAGS * 3 // 4  # most rollouts split their contexts (single-bucket ones don't)
