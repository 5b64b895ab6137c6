"""Shared by the LaunchDarkly import tests: the fixtures, contexts for them, a parity loop.

The contexts follow the context convention of docs/migration-launchdarkly.md and stay inside
its scope on purpose: arrays only in attributes compared with ``in``, date strings that are RFC
3339, ``name`` a string and ``anonymous`` a boolean. Everything else is mixed freely: kinds
(none, user, org, device), values of the wrong type, values on both sides of every boundary.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fader_engine
from fader_server.migration.model import Answer, SourceEvaluator, Translation

FIXTURES = Path(__file__).parent / "fixtures" / "launchdarkly"

KEYS = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "mallory",
    "trent",
    "tester",
    "acme",
    "globex",
    "evilcorp",
    "d-1",
    "vip-1",
    "vip-x",
]
VALUES: dict[str, list[Any]] = {
    "country": ["NL", "DE", "FR", "BE", "US", 7, True, "nl"],
    "email": [
        "a@example.com",
        "admin@corp.example",
        "root@x.io",
        "john.doe@corp.example",
        "x@example.org",
        "admin@example.com",
        "Ann@EXAMPLE.COM",
        5,
    ],
    "name": ["Ada", "John Smith", "Smithers", "ada"],
    "plan": ["free", "pro", "team", "enterprise", "ent", "10", 10, "freemium"],
    "phone": [
        "+31612345678",
        "+3161234567",
        "+31\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
        "+316123456789",
        "0612345678",
    ],
    "path": ["/admin", "/admin\n", "/root", "/home", "/admin/x", "/root\n\n"],
    "age": [10, 17.9, 18, 21.5, 22, 30, 40, 51, 64, 65, 66, 90, 91, "30", True],
    "score": [-1, 0, 99, 100, 150.5, -0.5, "100"],
    "signup": [
        "2023-12-31T23:59:59Z",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.001Z",
        "2023-12-31T23:59:59.999+00:00",
        1599999999999,
        1600000000000,
        1735689600123,
        1735689600124,
        1735689600123.5,
        "2025-01-01T00:00:00.123Z",
        "2025-01-01T00:00:00.124Z",
        "2025-06-01T10:00:00.5Z",
        "2025-06-01T10:00:00.4Z",
        "2025-06-01T12:00:00.6+02:00",
        "2025-06-01T10:00:00.500001Z",
        "not a date",
        True,
        1e15,
    ],
    "trialEnd": [
        "2024-05-31T23:59:59Z",
        "2024-06-01T00:00:00Z",
        "2024-06-01T00:00:00.001Z",
        1717200000000,
        1717199999999,
        "soon",
        False,
    ],
    "lastSeen": [
        1717200000000,
        1717200000001,
        "2024-06-01T00:00:00Z",
        "2024-06-01T00:00:00.001Z",
        "2024-06-01T00:00:00.0009Z",
        "2024-06-01t00:00:00z",
        "yesterday",
    ],
    "version": [
        "2.0.0",
        "2",
        "2.0",
        "v2.0.0",
        "3.0.0",
        "v3.0.0",
        "1.5.0-rc.0",
        "1.5.0-rc.1",
        "1.5.0",
        "1.4.9",
        "4.0.1",
        "4",
        "4.0.0",
        "v5.0.0",
        "1.5.0-rc.1+b7",
        "abc",
        2,
        "01.2.3",
        "2.0.0+build",
    ],
    "appVersion": ["10.0.9", "10.1", "10.1.0+build", "10.2.0-beta", "v11.0.0", "9", "", 10],
    "address": [{"country": "FR"}, {"country": "DE"}, "FR", {"city": "Paris"}],
    "/weird": ["yes", "no"],
    "a/b": [{"c~d": 1}, {"c~d": 1.0}, {"c~d": "1"}, 1],
    "tier": ["gold", "silver", "x", "bronze"],
    "os": ["ios17", "android", "iOS"],
    "beta": [True, False, "true"],
    "anonymous": [True, False],
    "groups": [["beta"], ["banned", "staff"], [], ["banned"], "beta", ["x", "staff"], "banned"],
    "device": ["tablet", "phone", "desktop"],
    "orgId": ["o-1", "o-2", "o-3", "o-17", 17, 18, 2.5, True],
    "company": [{"id": "c-1"}, {"id": 5}, {"id": "c-2"}, {"name": "x"}, "c-1"],
    "accountNumber": [1, 2, 3, 1234567, "A-1", 1.5, True, -7],
    "seats": [10, 499, 500, 1000, "500"],
}
KINDS: list[str | None] = [None, None, "user", "org", "device"]


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def contexts(seed: int, count: int) -> list[dict[str, Any]]:
    """`count` contexts: every key with every kind first, then random mixes of attributes."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for key in KEYS:
        for kind in ("user", "org", "device", None):
            ctx: dict[str, Any] = {"targetingKey": key}
            if kind is not None:
                ctx["kind"] = kind
            out.append(ctx)
    while len(out) < count:
        ctx = {
            "targetingKey": rng.choice(KEYS) if rng.random() < 0.3 else f"u-{rng.randrange(10**6)}"
        }
        kind = rng.choice(KINDS)
        if kind is not None:
            ctx["kind"] = kind
        for name, values in VALUES.items():
            if rng.random() < 0.35:
                ctx[name] = rng.choice(values)
        # Bucketing attributes take many values, so that every rollout range is reached.
        if rng.random() < 0.5:
            ctx["orgId"] = f"o-{rng.randrange(1000)}"
        if rng.random() < 0.5:
            ctx["company"] = {"id": rng.choice([f"c-{rng.randrange(1000)}", rng.randrange(1000)])}
        if rng.random() < 0.3:
            ctx["accountNumber"] = rng.randrange(-(10**9), 10**9)
        out.append(ctx)
    return out


def fader_answer(
    translation: Translation, engine: fader_engine.Engine, key: str, ctx: Any
) -> Answer:
    resolution = engine.evaluate(key, ctx)
    if resolution.variant is None:
        return Answer(None, None, str(resolution.reason))
    return translation.answers[key][resolution.variant]


@dataclass
class FlagRow:
    contexts: int = 0
    agreed: int = 0
    answers: Counter[str | None] = field(default_factory=Counter)
    disagreements: list[tuple[Any, Answer, Answer]] = field(default_factory=list)


def parity(
    translation: Translation, evaluator: SourceEvaluator, ctxs: Iterable[Mapping[str, Any]]
) -> dict[str, FlagRow]:
    """Per source flag: contexts, agreements, the variants seen, the first disagreements."""
    engine = fader_engine.load(translation.document)
    rows: dict[str, FlagRow] = {}
    ctxs = list(ctxs)
    for source_key, fader_key in translation.keys.items():
        row = rows.setdefault(source_key, FlagRow())
        for ctx in ctxs:
            theirs = evaluator.answer(source_key, ctx)
            ours = fader_answer(translation, engine, fader_key, ctx)
            row.contexts += 1
            row.answers[theirs.variant] += 1
            if theirs.agrees(ours):
                row.agreed += 1
            elif len(row.disagreements) < 5:
                row.disagreements.append((ctx, theirs, ours))
    return rows
