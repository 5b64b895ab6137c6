"""What a stream `patch` event costs an SDK: compiling the whole document again, as the SDK did
before, against compiling only what the patch changed, as ``FlagSet.patched`` does now.

Run from the repository root with the workspace's Python (it needs ``fader_sdk``, which
``bench/engine/.venv`` does not hold)::

    .venv/bin/python bench/engine/patch.py                  # 100, 1,000 and 5,000 flags, 5 rounds
    .venv/bin/python bench/engine/patch.py --sizes 100,20000 --rounds 3 --json /tmp/patch.json

For each size, one environment document like the server builds (``make_document``: a fifth of
the flags plain on/off, the rest with targeting rules naming one of 20 segments, splits, some
prerequisites and owner metadata) is loaded once; then, interleaved round by round
(``timing.interleaved``), two ways of applying the same patch to it are timed:

* **full**: ``fader_engine.load(apply_patch(document, patch))``, the SDK's former
  ``FlagSet.patched``: validate and compile every flag;
* **reuse**: ``flag_set.patched(payload)``: validate and compile the changed entries and what
  depends on them, keep every other compiled flag.

Two patches: **one flag** (a rule's variant of a flag in the middle of the document), and **one
segment** named by about 1 in 20 flags, which recompiles those flags too. Before timing, both
ways must evaluate every flag alike for a set of users, or the row is printed as BROKEN and the
script exits 1. ``ratio`` is full over reuse (how many times cheaper a patch became), from each
round's pair; figures are medians over rounds, in milliseconds, with the machine's load last
(see README.md: trust ratios over absolute times on a shared machine).

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import timing

import fader_engine
from fader_engine.patch import apply_patch
from fader_sdk.flag_set import FlagSet, Origin

SEGMENTS = 20
USERS: list[dict[str, Any]] = [
    {"targetingKey": f"user-{n}", "email": f"u{n}@c{n % 25}.test", "country": c, "plan": p}
    for n, (c, p) in enumerate(
        [("NL", "pro"), ("US", "free"), ("DE", "pro"), ("FR", "free"), ("NL", "free")] * 4
    )
]


def _flag(rnd: random.Random, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "offVariant": "off",
        "default": {"variant": "off"},
        "metadata": {"owner_team": f"team-{index % 7}"},
    }
    if rnd.random() < 0.2:
        return entry
    entry["rules"] = [
        {
            "id": "beta",
            "clauses": [{"op": "in_segment", "values": [f"segment-{rnd.randrange(SEGMENTS)}"]}],
            "variant": "on",
        },
        {
            "id": "eu-pro",
            "clauses": [
                {"attribute": "country", "op": "in", "values": ["NL", "DE", "FR"]},
                {"attribute": "plan", "op": "in", "values": ["pro"]},
            ],
            "variant": "on",
        },
    ]
    entry["default"] = {
        "split": {"weights": [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]}
    }
    if index > 0 and rnd.random() < 0.1:
        entry["prerequisites"] = [{"flag": f"flag-{rnd.randrange(index)}", "variants": ["on"]}]
    return entry


def make_document(flags: int, seed: int = 13) -> dict[str, Any]:
    """An environment of `flags` flags; the same for the same arguments."""
    rnd = random.Random(seed)
    segments = {
        f"segment-{i}": {
            "included": [f"user-{j}" for j in range(i, i + 5)],
            "rules": [
                {"clauses": [{"attribute": "email", "op": "ends_with", "values": [f"@c{i}.test"]}]}
            ],
        }
        for i in range(SEGMENTS)
    }
    return {
        "format": "fader/v1",
        "bucketing": "v2",
        "metadata": {"project": "bench", "environment": "production"},
        "segments": segments,
        "flags": {f"flag-{i}": _flag(rnd, i) for i in range(flags)},
    }


def patches(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two patches timed: one flag changed, one segment changed."""
    flags = document["flags"]
    key = next(k for k in list(flags)[len(flags) // 2 :] if "rules" in flags[k])
    flag = copy.deepcopy(flags[key])
    flag["rules"][0]["variant"] = "off"
    segment = {"included": ["user-1"], "rules": []}
    return {
        "one flag": {"flags": {key: flag}, "segments": {}, "fields": {}},
        "one segment": {"flags": {}, "segments": {"segment-3": segment}, "fields": {}},
    }


def same_answers(left: fader_engine.Engine, right: fader_engine.Engine) -> bool:
    if list(left.flags) != list(right.flags):
        return False
    return all(left.evaluate(k, u) == right.evaluate(k, u) for k in left.flags for u in USERS)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,1000,5000", help="flag counts (default 100,1000,5000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="shortest timed loop (default 0.2)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes is a comma-separated list of integers")
    if args.rounds < 1 or args.seconds <= 0 or any(size < 1 for size in args.sizes):
        parser.error("--rounds and --sizes must be >= 1 and --seconds > 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    meter = timing.LoadMeter()
    rows: list[dict[str, Any]] = []
    broken = False
    print(
        f"{'flags':>6}  {'patch':<11}  {'full ms':>9}  {'reuse ms':>9}  {'ratio':>7}  ratio range"
    )
    for size in args.sizes:
        document = make_document(size)
        snapshot = {"project": "bench", "environment": "production", "version": 1}
        flag_set = FlagSet.from_wire({**snapshot, "document": document}, Origin.SERVER)
        for name, changes in patches(document).items():
            payload = {**snapshot, "base": 1, "version": 2, **changes}
            full = fader_engine.load(apply_patch(document, payload))
            if not same_answers(flag_set.patched(payload).engine, full):
                print(f"{size:>6}  {name:<11}  BROKEN: reuse and full answer differently")
                broken = True
                continue
            namespace = {
                "load": fader_engine.load,
                "apply_patch": apply_patch,
                "document": document,
                "payload": payload,
                "flag_set": flag_set,
            }
            series = timing.interleaved(
                {
                    "full": timing.Timeable("load(apply_patch(document, payload))", namespace),
                    "reuse": timing.Timeable("flag_set.patched(payload)", namespace),
                },
                args.rounds,
                args.seconds,
            )
            full_ns, reuse_ns = series["full"], series["reuse"]
            ratios = [f / r for f, r in zip(full_ns.ns_per_call, reuse_ns.ns_per_call, strict=True)]
            ratio = statistics.median(ratios)
            full_ms, reuse_ms = full_ns.median / 1e6, reuse_ns.median / 1e6
            print(
                f"{size:>6}  {name:<11}  {full_ms:>9.2f}  {reuse_ms:>9.3f}"
                f"  {ratio:>6.0f}x  {min(ratios):.0f}x-{max(ratios):.0f}x"
            )
            rows.append(
                {
                    "flags": size,
                    "patch": name,
                    "full_ms": full_ms,
                    "reuse_ms": reuse_ms,
                    "ratio": ratio,
                    "ratios": ratios,
                }
            )
    load = meter.stop()
    print(("DISTURBED: " if load.disturbed else "") + "load: " + load.describe())
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "load": load.as_dict()}, indent=2))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
