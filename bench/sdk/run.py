"""Fader's SDK-facing endpoints against Unleash 8.2's, one run, side by side: requests per
second, latency, and server CPU time per request.

Run: ``.venv/bin/python bench/sdk/run.py`` (``--quick`` for a smoke run, ``--help``).

The systems are started and seeded by ``bench/server`` (the same 50 boolean flags with a 25%
rollout on each: `fader serve` on SQLite and on PostgreSQL, one process each; Unleash 8.2, one
Node process on PostgreSQL, when npm can install it). Each row of the table is what an SDK
asks: all flags for one context, one flag for one context, the SDK configuration, the flagd
document. wrk drives every cell for a fixed time with a fixed number of connections, after a
warm-up, the systems interleaved and their order rotated round by round. Fader/Unleash ratios
of requests per server-CPU-second and of p99 are taken per round and printed as the median and
range over rounds. See README.md for what is measured and the fairness choices.

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

import endpoints
import servers
import systems
import wrk_load
from endpoints import ROW_TITLES, ROWS, Endpoint
from wrk_load import Cell

HERE = Path(__file__).resolve().parent


def _bench_server_run() -> ModuleType:
    """bench/server/run.py, imported under another name (this script is `run` too)."""
    spec = importlib.util.spec_from_file_location("server_run", HERE.parent / "server" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_run = _bench_server_run()
ALL_SYSTEMS = server_run.ALL_SYSTEMS
PEER = server_run.PEER


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--systems", default=",".join(ALL_SYSTEMS), help=f"subset of {','.join(ALL_SYSTEMS)}"
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("FADER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a database to connect to for CREATE/DROP DATABASE [env FADER_BENCH_PG]",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 s cells")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:  # its figures, for whichever of these were not given
        quick = {"rounds": 1, "duration": 3.0, "warmup": 1.0}
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.clients = [1]  # bench/server seeds max(FLAGS, clients) flags: FLAGS
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown or args.rounds < 1 or args.connections < 1 or args.duration <= 0:
        parser.error(f"unknown systems {sorted(unknown)}" if unknown else "bad numbers")
    return args


Targets = dict[str, tuple[systems.System, dict[str, Endpoint]]]


def prepare(started: list[systems.System], notes: list[str]) -> Targets:
    """SDK credentials and endpoints per system, each endpoint checked once."""
    targets: Targets = {}
    for system in started:
        try:
            if system.name == PEER:
                rows = endpoints.unleash_endpoints(system)
            else:
                rows = endpoints.fader_endpoints(system)
            for endpoint in rows.values():
                endpoints.check(system.server.port, endpoint)
        except RuntimeError as exc:
            notes.append(f"{system.name} not measured: {exc}")
            continue
        targets[system.name] = (system, rows)
    return targets


Results = dict[tuple[str, str], list[Cell]]


def measure(args: argparse.Namespace, targets: Targets, work: Path) -> Results:
    scripts = {
        (row, name): wrk_load.write_script(endpoint, work / f"{row}-{name.replace(' ', '-')}.lua")
        for name, (_, rows) in targets.items()
        for row, endpoint in rows.items()
    }
    results: Results = {key: [] for key in scripts}
    names = list(targets)
    for round_index in range(args.rounds):
        began = time.monotonic()
        shift = round_index % len(names)
        for row in ROWS:
            for name in names[shift:] + names[:shift]:
                if (row, name) not in scripts:
                    continue
                server = targets[name][0].server
                cell = (server.port, scripts[(row, name)], args.connections, args.threads)
                wrk_load.run(*cell, args.warmup, server.pid)
                results[(row, name)].append(wrk_load.run(*cell, args.duration, server.pid))
        took = time.monotonic() - began
        print(f"round {round_index + 1}/{args.rounds} took {took:.0f} s", flush=True)
    return results


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def summarise(cells: list[Cell]) -> dict[str, float | int]:
    requests = sum(c.requests for c in cells)
    server = sum(c.server_cpu for c in cells)
    return {
        "rounds": len(cells),
        "requests": requests,
        "errors": sum(c.errors for c in cells),
        "req_per_s": statistics.median(c.rate for c in cells),
        "p50_ms": statistics.median(c.p50_ms for c in cells),
        "p99_ms": statistics.median(c.p99_ms for c in cells),
        "p99_low_ms": min(c.p99_ms for c in cells),
        "p99_high_ms": max(c.p99_ms for c in cells),
        "max_ms": max(c.max_ms for c in cells),
        "bytes_per_response": sum(c.bytes for c in cells) / max(1, requests),
        "server_ms_per_req": 1000 * server / max(1, requests),
        "req_per_server_cpu_s": requests / server if server else float("nan"),
        "postgres_ms_per_req": 1000 * sum(c.postgres_cpu for c in cells) / max(1, requests),
        "wrk_ms_per_req": 1000 * sum(c.wrk_cpu for c in cells) / max(1, requests),
    }


def print_tables(args: argparse.Namespace, targets: Targets, results: Results) -> dict:
    header = (
        f"{'row':24} {'system':18} {'endpoint':27} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms (range)':>18} {'err':>4} {'bytes':>6} {'srv ms/req':>10} "
        f"{'req/srv-cpu-s':>13} {'pg ms/req':>9} {'wrk ms/req':>10}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    out: dict[str, dict] = {}
    for row in ROWS:
        for name, (_, rows) in targets.items():
            if (row, name) not in results:
                if name == PEER:
                    print(f"{ROW_TITLES[row]:24} {name:18} {'(no such endpoint)':27}")
                continue
            s = summarise(results[(row, name)])
            out[f"{row} {name}"] = {"endpoint": rows[row].label, **s}
            p99 = f"{s['p99_ms']:.1f} ({s['p99_low_ms']:.1f}-{s['p99_high_ms']:.1f})"
            print(
                f"{ROW_TITLES[row]:24} {name:18} {rows[row].label:27} {s['req_per_s']:>7.0f} "
                f"{s['p50_ms']:>7.2f} {p99:>18} {s['errors']:>4} "
                f"{s['bytes_per_response']:>6.0f} {s['server_ms_per_req']:>10.3f} "
                f"{s['req_per_server_cpu_s']:>13.0f} {s['postgres_ms_per_req']:>9.3f} "
                f"{s['wrk_ms_per_req']:>10.3f}"
            )
        print()
    print(
        f"{args.connections} connections, {args.duration:g} s per cell, {args.rounds} rounds; "
        "req/s, p50 and p99: median over rounds (p99 range in brackets);\nerr: HTTP >= 400 or "
        "socket errors, all rounds; bytes: per response, headers included; srv ms/req and "
        "req/srv-cpu-s: CPU time of\nthe server process and its descendants (/proc utime+stime) "
        "over all rounds; pg ms/req: all postgres processes on the machine."
    )
    if PEER not in targets:
        return out
    print(
        "\nFader / Unleash 8.2, per round, median (range) over rounds: req per server-CPU-second "
        "(> 1: Fader does more per CPU second), p99 (< 1: Fader faster)"
    )
    for row in ROWS:
        if (row, PEER) not in results:
            continue
        peer = results[(row, PEER)]
        for name in targets:
            if name == PEER:
                continue
            ours = results[(row, name)]
            per_cpu = [
                a.requests_per_cpu_second / b.requests_per_cpu_second
                for a, b in zip(ours, peer, strict=True)
            ]
            with_pg = [
                (a.requests / (a.server_cpu + a.postgres_cpu))
                / (b.requests / (b.server_cpu + b.postgres_cpu))
                for a, b in zip(ours, peer, strict=True)
            ]
            p99 = [a.p99_ms / b.p99_ms for a, b in zip(ours, peer, strict=True)]
            rate = [a.rate / b.rate for a, b in zip(ours, peer, strict=True)]
            ratios = {"per_cpu": per_cpu, "per_cpu_with_pg": with_pg, "p99": p99, "rate": rate}
            out[f"ratio {row} {name}"] = {k: statistics.median(v) for k, v in ratios.items()}
            print(
                f"  {ROW_TITLES[row]:24} {name:18} req/srv-cpu-s {_spread(per_cpu)}x  "
                f"(with postgres {_spread(with_pg)}x)  p99 {_spread(p99)}x  req/s {_spread(rate)}x"
            )
    return out


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    context = server_run.machine_context(args)
    print("Fader SDK endpoints against Unleash 8.2: throughput, latency, server CPU per request")
    for key, value in context.items():
        print(f"  {key}: {value}")
    wrk = wrk_load.find_wrk()
    if wrk is None:
        print("wrk is not installed: apt-get install -y wrk (Debian package)")
        return 1
    print(
        f"  load: {wrk} ({args.threads} thread), {args.connections} connections, "
        f"{args.duration:g} s per cell after {args.warmup:g} s of warm-up, {args.rounds} rounds; "
        f"{systems.FLAGS} boolean flags, 25% rollout; userIds cycling over {endpoints.USERS}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="fader-sdk-bench-") as tmp,
        contextlib.ExitStack() as st,
    ):
        started, notes = server_run.start_systems(args, st, Path(tmp))
        targets = prepare(started, notes)
        for system, _ in targets.values():
            print(f"  {system.name}: {system.version} (pid {system.server.pid})")
        for note in notes:
            print(f"  NOTE: {note}")
        if not targets:
            print("nothing could be set up")
            return 1
        results = measure(args, targets, Path(tmp))
        summary = print_tables(args, targets, results)
    end = servers.loadavg()
    print(f"\nloadavg (1, 5, 15 min) at start {context['loadavg at start']}, at end {end}")
    if "unleash" in args.systems and PEER not in targets:
        print("NOTE: no Unleash comparison in this run (see NOTE above): Fader's figures alone.")
    if args.json:
        raw = {
            f"{row} {name}": [asdict(c) for c in cells] for (row, name), cells in results.items()
        }
        document = {"context": context, "loadavg at end": end, "notes": notes}
        document |= {"args": {k: str(v) for k, v in vars(args).items()}}
        args.json.write_text(json.dumps(document | {"summary": summary, "cells": raw}, indent=2))
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
