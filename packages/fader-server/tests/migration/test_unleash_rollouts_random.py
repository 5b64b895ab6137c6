"""Random rollouts and variant weights: Fader buckets exactly the users Unleash's SDK buckets.

Flexible rollouts with random percentages, group ids (or none: the flag name) and stickiness
(default, userId, sessionId, a custom field), each with random variant weights (fixed and
variable, as Unleash's server computes them: summing to 1000), some with strategy variants and
a second strategy to fall through to, over 100,000 random contexts in total. Any difference in
hashing, normalisation, the fall-through order or the stickiness fallback shows up here.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from typing import Any

import pytest
from unleash_support import NONDETERMINISTIC, fader_answer

import fader_engine
from fader_server.migration.unleash import SOURCE

pytest.importorskip("UnleashClient", reason="Unleash's SDK (the migrate extra) is not installed")

FLAGS = 50
CONTEXTS = 100_000
STICKINESS = ["default", "userId", "sessionId", "tenant", None]


def _weights(rng: random.Random, count: int) -> list[int]:
    cuts = sorted(rng.randint(0, 1000) for _ in range(count - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, 1000], strict=True)]


def _variants(rng: random.Random, prefix: str) -> list[dict[str, Any]]:
    stickiness = rng.choice(["default", "userId", "sessionId", "tenant"])
    count = rng.randint(2, 5)
    out = []
    for index, weight in enumerate(_weights(rng, count)):
        variant: dict[str, Any] = {
            "name": f"{prefix}{index}",
            "weight": weight,
            "weightType": rng.choice(["variable", "fix"]),
            "stickiness": stickiness,
        }
        if rng.random() < 0.5:
            variant["payload"] = {"type": "string", "value": f"{prefix}-{index}"}
        out.append(variant)
    return out


def _rollout(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {
        "rollout": str(rng.choice([0, 1, 5, 33, 50, 67, 99, 100, rng.randint(0, 100)]))
    }
    stickiness = rng.choice(STICKINESS)
    if stickiness is not None:
        params["stickiness"] = stickiness
    if rng.random() < 0.8:
        params["groupId"] = "".join(rng.choices(string.ascii_letters + "-.:", k=rng.randint(1, 12)))
    return {"name": "flexibleRollout", "parameters": params}


def _payload(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    features = []
    for index in range(FLAGS):
        strategies = [_rollout(rng)]
        if rng.random() < 0.4:
            strategies[0]["variants"] = _variants(rng, "s")
        if rng.random() < 0.5:
            strategies.append(_rollout(rng))
        flag: dict[str, Any] = {
            "name": f"random-{index}",
            "enabled": True,
            "strategies": strategies,
        }
        if rng.random() < 0.7:
            flag["variants"] = _variants(rng, "v")
        features.append(flag)
    return {"version": 2, "features": features}


def _contexts(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ctx: dict[str, Any] = {}
        if rng.random() < 0.9:
            ctx["targetingKey"] = f"u-{rng.getrandbits(48):x}"
        if rng.random() < 0.85:
            ctx["sessionId"] = rng.choice([f"s-{rng.getrandbits(32):x}", rng.getrandbits(20)])
        if rng.random() < 0.95:
            ctx["tenant"] = rng.choice([f"t-{rng.randint(0, 5000)}", rng.randint(0, 5000)])
        out.append(ctx)
    return out


def test_random_rollouts_and_variant_weights_agree_with_the_unleash_sdk() -> None:
    data = _payload(seed=20261203)
    translation = SOURCE.translate(data, "production")
    assert not translation.unsupported
    engine = fader_engine.load(translation.document)
    evaluator = SOURCE.evaluator(data)
    contexts = _contexts(seed=17, count=CONTEXTS)
    names = sorted(translation.keys)
    agreed = nondeterministic = 0
    disagreements = []
    served: Counter[str] = Counter()
    try:
        # Each context meets one flag: 100,000 evaluations by each side.
        for index, ctx in enumerate(contexts):
            name = names[index % len(names)]
            theirs = evaluator.answer(name, ctx)
            if theirs.variant is None and theirs.detail.startswith(NONDETERMINISTIC):
                nondeterministic += 1
                continue
            ours = fader_answer(translation, engine, translation.keys[name], ctx)
            if theirs.agrees(ours):
                agreed += 1
                served[f"{name}:{theirs.variant}"] += 1
            else:
                disagreements.append((name, ctx, theirs, ours))
    finally:
        evaluator.close()
    assert not disagreements, disagreements[:5]
    assert agreed + nondeterministic == CONTEXTS
    assert nondeterministic < CONTEXTS * 0.1
    # Both sides of every rollout and many variants were exercised, not just "off".
    assert sum(n for k, n in served.items() if k.endswith(":disabled")) > CONTEXTS * 0.1
    assert len(served) > 100
