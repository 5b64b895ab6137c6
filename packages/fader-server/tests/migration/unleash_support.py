"""Shared by the Unleash import tests: the fixtures, contexts for them, a parity loop.

The contexts follow the convention of docs/migration-unleash.md and stay inside its scope on
purpose: identifiers and stickiness fields are strings or integers, attributes tested by string
operators are strings or booleans, attributes tested by NUM_* are numbers or non-numeric
strings, instants are RFC 3339 with a 'T'. Everything else is mixed freely: missing fields,
values of the wrong type, values on both sides of every boundary, dotted capital I and the
Kelvin sign for the case-insensitive operators.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fader_engine
from fader_server.migration.model import Answer, SourceEvaluator, Translation

FIXTURES = Path(__file__).parent / "fixtures" / "unleash"
NONDETERMINISTIC = "nondeterministic:"

USERS = [f"user-{i}" for i in range(40)] + ["alice", "42", ""]
VALUES: dict[str, list[Any]] = {
    "sessionId": [f"s-{i}" for i in range(30)] + ["", 7, 1234567],
    "remoteAddress": [
        "10.1.2.3",
        "10.255.255.255",
        "11.0.0.1",
        "192.168.1.7",
        "192.168.1.8",
        "172.16.200.1",
        "172.17.0.1",
        "2001:db8::5",
        "2001:db9::1",
        "::1",
        "::ffff:10.0.0.1",
        "8.8.8.8",
        "nope",
        "",
        10,
        "fe80::1%eth0",
        "FE80::9",
        "10.0.0.1/32",
        " 10.0.0.1",
    ],
    "environment": ["production", "staging", "Production"],
    "appName": ["legacy", "web", "LEGACY"],
    "currentTime": [
        "2026-05-31T23:59:59Z",
        "2026-06-01T00:00:00Z",
        "2026-06-01T00:00:00.000Z",
        "2026-06-01T00:00:00.000001Z",
        "2026-06-01T02:00:00.5+02:00",
        "2026-12-31T10:00:00Z",
        "2026-12-31T10:00:00.000Z",
        "2026-12-31T09:59:59.999Z",
        "2027-01-01T00:00:00-05:00",
        "2026-07-15T12:00:00+05:30",
        "garbage",
        1780000000,
        "2026-02-30T00:00:00Z",
    ],
    "signupDate": [
        "2024-12-31T23:59:59.999Z",
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00.000001Z",
        "2020-01-01T00:00:00+01:00",
        "2025-01-01T00:59:59+01:00",
        "yesterday",
        5,
    ],
    "country": [
        "NL",
        "DE",
        "US",
        "SE",
        "nl",
        5,
        5.0,
        True,
        1.5,
        "05",
        "5",
        "true",
        "1.5",
        7,
        False,
    ],
    "plan": ["pro", "free", "enterprise", "7", 7, 5, True, "5", "team"],
    "email": [
        "a@example.com",
        "bob@EXAMPLE.COM",
        "admin@x.org",
        "false",
        "true-ish",
        True,
        False,
        "Bob@foo.se",
        "",
        "fa@example.org",
        "bobby@example.net",
        "x@Example.Com",
    ],
    "name": [
        "Kit",
        "KİT",
        "kİ",
        "\u212aitten",
        "TRex",
        "tr",
        "İ",
        "\u0131",
        "Sigma",
        "Tİ",
        "Ti",
        "mike",
        "MIKE",
        True,
        "true",
    ],
    "age": [
        10,
        12.5,
        13,
        18,
        17.999,
        21,
        20.5,
        30,
        30.0,
        30.000000000000004,
        65,
        66,
        -1,
        True,
        "abc",
        2**60,
        1e20,
        0,
    ],
    "score": [
        0.1,
        0.30000000000000004,
        1e-17,
        -1e-17,
        0,
        0.0,
        -2.5,
        -3,
        -2.4,
        2.220446049250313e-16,
        1.1102230246251565e-16,
        0.09999999999999999,
        0.10000000000000003,
        "x",
        False,
    ],
    "appVersion": [
        "2.0.0",
        "2.0.0+build.5",
        "3.1.0-beta.2",
        "3.1.0-beta.10",
        "3.1.0",
        "0.9.9",
        "v2.0.0",
        "2.0",
        "1.0.0-rc.1",
        "01.0.0",
        2,
        "10.0.0",
        "1.0.0",
        "3.1.0-beta",
        "1.0.0-0",
    ],
    "tenant": ["acme", "globex", 17, "x", "initech"],
    "hostname": ["web-1", "WEB-2.example.com", "db"],
    "random": ["r1", "r2"],
}


CHANCES = {"hostname": 0.05, "currentTime": 0.9, "sessionId": 0.8, "tenant": 0.8}
"""How often a context has the attribute (else 0.55)."""


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def contexts(seed: int, count: int) -> list[dict[str, Any]]:
    """`count` random contexts; `hostname` rarely (the Python SDK cannot check it)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(count):
        ctx: dict[str, Any] = {}
        if rng.random() < 0.85:
            ctx["targetingKey"] = rng.choice(USERS)
        for name, values in VALUES.items():
            chance = CHANCES.get(name, 0.55)
            if rng.random() < chance:
                ctx[name] = rng.choice(values)
        out.append(ctx)
    return out


def fader_answer(
    translation: Translation, engine: fader_engine.Engine, key: str, ctx: Mapping[str, Any]
) -> Answer:
    result = engine.evaluate(key, ctx)
    if result.variant is None:
        return Answer(None, None, str(result.error_code))
    return translation.answers[key][result.variant]


@dataclass
class Row:
    flag: str
    contexts: int = 0
    agreed: int = 0
    nondeterministic: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    disagreements: list[tuple[Mapping[str, Any], Answer, Answer]] = field(default_factory=list)


def parity(
    translation: Translation, evaluator: SourceEvaluator, contexts: list[dict[str, Any]]
) -> list[Row]:
    """Both answers for every translated flag and context (a local loop, not parity.py)."""
    engine = fader_engine.load(translation.document)
    rows = []
    for name, key in sorted(translation.keys.items()):
        if key not in engine:
            continue
        row = Row(name)
        for ctx in contexts:
            row.contexts += 1
            theirs = evaluator.answer(name, ctx)
            if theirs.variant is None and theirs.detail.startswith(NONDETERMINISTIC):
                row.nondeterministic += 1
                continue
            ours = fader_answer(translation, engine, key, ctx)
            row.answers[f"{theirs.variant}={json.dumps(theirs.value, sort_keys=True)}"] += 1
            if theirs.agrees(ours):
                row.agreed += 1
            else:
                row.disagreements.append((ctx, theirs, ours))
        rows.append(row)
    return rows
