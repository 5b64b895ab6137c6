"""What one summary costs the server, by its shape: server CPU per ``POST /api/v1/sdk/summaries``.

Run: ``.venv/bin/python bench/events/ingest.py`` (SQLite and PostgreSQL; ``--help``).

``run.py`` measures a whole fleet; this script isolates the ingest path. It starts a fresh
`fader serve` per backend, seeds `--flags` flags and a server SDK key, then posts `--requests`
summaries one after the other over one keep-alive connection, in rounds that interleave the
shapes below (so a busy machine slows every shape alike), and prints the server process's CPU
time per request for each shape:

- ``counts``: what an SDK sends in most intervals: an evaluation item per flag and variant
  without distinct contexts, and the metric items;
- ``contexts``: the same items, each evaluation item carrying a sketch of `--keys` targeting
  keys (what an SDK sends once a minute);
- ``empty-ish``: one evaluation item, the floor of a request (authentication, routing,
  validation, one transaction).

It prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from fader_engine.sketches import DistinctSketch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "delivery"))

import servers  # noqa: E402  (bench/delivery/servers.py: deployments, seeding, /proc)

VARIANTS = ("on", "off", "")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--flags", type=int, default=20, help="flags per summary (20)")
    parser.add_argument("--keys", type=int, default=200, help="targeting keys per sketch (200)")
    parser.add_argument("--requests", type=int, default=300, help="requests per shape (300)")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args(argv)


def bodies(flags: list[str], keys: int, rng: random.Random) -> dict[str, Any]:
    """One body per shape (their ids are set per request)."""
    evaluations: list[dict[str, Any]] = []
    with_contexts: list[dict[str, Any]] = []
    for flag in flags:
        for variant in VARIANTS:
            item = {"flag": flag, "variant": variant or None, "reason": "SPLIT", "count": 41}
            evaluations.append(item)
            users = (f"user-{rng.randrange(100_000)}" for _ in range(keys))
            sketch = DistinctSketch().update(users)
            with_contexts.append({**item, "contexts": {"exact": keys, "sketch": sketch.encode()}})
    metrics = [
        {"name": "checkout.error", "flag": flag, "variant": variant or None, "count": 2,
         "sum": 2.0, "sum_squares": 2.0}
        for flag in flags
        for variant in VARIANTS[:2]
    ]  # fmt: skip
    now = time.time()
    base = {"start": now - 5, "end": now}
    return {
        "counts": {**base, "evaluations": evaluations, "metrics": metrics},
        "contexts": {**base, "evaluations": with_contexts, "metrics": metrics},
        "one item": {**base, "evaluations": evaluations[:1]},
    }


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    rng = random.Random(20261203)
    # no rate limit: this measures the ingest path, not the limiter's refusals
    env = {"FADER_SDK_EVENTS_PER_SECOND": "0"}
    with servers.deployment(backend, 1, args.pg_admin_url, env=env) as dep:
        servers.create_project(dep)
        flags = servers.create_flags(dep, args.flags)
        servers.create_sdk_key(dep)
        server = dep.servers[0]
        shapes = bodies(flags, args.keys, rng)
        cpu = dict.fromkeys(shapes, 0.0)
        sizes = {name: len(json.dumps(body)) for name, body in shapes.items()}
        base_url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base_url, headers=dep.sdk(), timeout=60) as client:
            for n in range(args.requests):
                for name, body in shapes.items():
                    payload = {**body, "id": f"bench-{name.replace(' ', '-')}-{n:08d}"}
                    content = json.dumps(payload).encode()
                    headers = {"content-type": "application/json"}
                    before = servers.cpu_seconds(server.pid)
                    response = client.post("/api/v1/sdk/summaries", content=content,
                                           headers=headers)  # fmt: skip
                    cpu[name] += servers.cpu_seconds(server.pid) - before
                    if response.status_code != 202:
                        raise SystemExit(f"{name}: {response.status_code} {response.text}")
        return {
            "cpu_ms": {name: cpu[name] / args.requests * 1000 for name in shapes},
            "bytes": sizes,
            "load": servers.loadavg(),
        }


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    servers.raise_nofile_limit()
    print(f"# bench/events/ingest: {args.requests} requests per shape, {args.flags} flags x "
          f"{len(VARIANTS)} variants, sketches of {args.keys} keys")  # fmt: skip
    for key, value in servers.machine_context(args.pg_admin_url).items():
        print(f"# {key}: {value}")
    print()
    print("| backend | shape | items | body bytes | server CPU per request |")
    print("| --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        result = run_backend(args, backend)
        for name, ms in result["cpu_ms"].items():
            items = {"counts": args.flags * 5, "contexts": args.flags * 5, "one item": 1}[name]
            print(f"| {backend} | {name} | {items} | {result['bytes'][name]:,} | {ms:.2f} ms |")
        print(f"<!-- {backend}: load at end {result['load']} -->")


if __name__ == "__main__":
    main(sys.argv[1:])
