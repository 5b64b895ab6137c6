"""Fader's admin API under load: flag-configuration reads and writes, SQLite and PostgreSQL,
against the Unleash server when it can run here.

Run: ``.venv/bin/python bench/server/run.py`` (``--quick`` for a smoke run, ``--help``).

Starts real `fader serve` processes (SQLite in a temporary directory; PostgreSQL in a database
of its own, dropped at the end) and, when npm is available, Unleash 8.2 on its own PostgreSQL
database; seeds each; then times reads and writes with 1 and 8 closed-loop clients, the
systems interleaved round by round. Prints p50 / p99 / max latency and requests per second,
the spread over rounds, Unleash's figures as ratios to Fader on the same PostgreSQL, and
where the CPU went. See README.md for what is measured and the caveats.

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import systems
from load import Batch, loadavg, percentile, run_batch
from processes import ServerProcess, postgres_database, postgres_version

ALL_SYSTEMS = ("fader-sqlite", "fader-postgresql", "unleash")
PEER, PEER_BASE = "unleash postgresql", "fader postgresql"
"""Ratios compare the peer with Fader on the same PostgreSQL server."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument(
        "--reads", type=int, default=1000, help="reads per batch, i.e. per round (default 1000)"
    )
    parser.add_argument(
        "--writes", type=int, default=200, help="writes per batch, i.e. per round (default 200)"
    )
    parser.add_argument("--clients", default="1,8", help="client counts (default 1,8)")
    parser.add_argument(
        "--systems", default=",".join(ALL_SYSTEMS), help=f"subset of {','.join(ALL_SYSTEMS)}"
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("FADER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a database to connect to for CREATE/DROP DATABASE [env FADER_BENCH_PG]",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, few requests")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.reads, args.writes = 1, 160, 40
    args.clients = [int(c) for c in args.clients.split(",")]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown or args.rounds < 1 or min(args.clients) < 1:
        parser.error(f"unknown systems {sorted(unknown)}" if unknown else "bad --rounds/--clients")
    return args


def machine_context(args: argparse.Namespace) -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    context = {
        "cpu": f"{os.cpu_count()} x {model}",
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg at start": loadavg(),
    }
    if any(s != "fader-sqlite" for s in args.systems):
        try:
            context["postgresql"] = postgres_version(args.pg_admin_url)
        except Exception as exc:  # shown, and the PostgreSQL systems are skipped
            context["postgresql"] = f"unreachable ({type(exc).__name__}: {exc})".splitlines()[0]
    return context


def start_systems(
    args: argparse.Namespace, stack: contextlib.ExitStack, work: Path
) -> tuple[list[systems.System], list[str]]:
    """Start every selected system in parallel, then wait for and seed each; notes say why not."""
    notes: list[str] = []
    pending: list[tuple[str, ServerProcess, str | None]] = []  # (kind, server, fader token)
    clients = max(args.clients)
    pg_ok = True
    if any(s != "fader-sqlite" for s in args.systems):
        try:
            postgres_version(args.pg_admin_url)
        except Exception as exc:
            pg_ok = False
            notes.append(f"PostgreSQL systems skipped: cannot connect ({type(exc).__name__})")
    if "fader-sqlite" in args.systems:
        (work / "sqlite").mkdir()
        server, token = systems.start_fader(
            "fader sqlite", work / "sqlite", None, work / "fader-sqlite.log"
        )
        stack.callback(server.stop)
        pending.append(("fader", server, token))
    if "fader-postgresql" in args.systems and pg_ok:
        name = stack.enter_context(postgres_database(args.pg_admin_url, "fader_bench"))
        url = urlunsplit(urlsplit(args.pg_admin_url)._replace(path="/" + name))
        (work / "pg").mkdir()
        server, token = systems.start_fader(
            "fader postgresql", work / "pg", url, work / "fader-pg.log"
        )
        stack.callback(server.stop)
        pending.append(("fader", server, token))
    if "unleash" in args.systems and pg_ok:
        why_not = systems.install_unleash()
        if why_not is not None:
            notes.append(f"Unleash not compared: {why_not}")
        else:
            name = stack.enter_context(postgres_database(args.pg_admin_url, "unleash_bench"))
            server = systems.start_unleash(args.pg_admin_url, name, work / "unleash.log")
            stack.callback(server.stop)
            pending.append(("unleash", server, None))
    started: list[systems.System] = []
    for kind, server, token in pending:
        try:
            server.wait_ready("/readyz" if kind == "fader" else "/health", timeout=180)
            if kind == "fader":
                assert token is not None
                started.append(systems.seed_fader(server, token, clients))
            else:
                started.append(systems.seed_unleash(server, clients))
        except RuntimeError as exc:
            notes.append(f"{server.name} not measured: {exc}")
    return started, notes


Results = dict[tuple[str, int, str], list[Batch]]


def measure(args: argparse.Namespace, started: list[systems.System]) -> Results:
    cells = [(op, c) for op in ("read", "write") for c in args.clients]
    size = {"read": args.reads, "write": args.writes}

    def batch(system: systems.System, op: str, clients: int, total: int) -> Batch:
        operation = system.read if op == "read" else system.write
        per_client = max(1, total // clients)
        return run_batch(
            "127.0.0.1", system.server.port, operation, clients, per_client, system.server.pid
        )

    print("warming up ...", flush=True)
    for system in started:
        for op, clients in cells:
            batch(system, op, clients, max(clients * 5, size[op] // 10))
    results: Results = {(op, c, s.name): [] for op, c in cells for s in started}
    for round_index in range(args.rounds):
        began = time.monotonic()
        for op, clients in cells:
            shift = round_index % len(started)
            for system in started[shift:] + started[:shift]:
                results[(op, clients, system.name)].append(batch(system, op, clients, size[op]))
        print(
            f"round {round_index + 1}/{args.rounds} took {time.monotonic() - began:.0f} s",
            flush=True,
        )
    return results


def summarise(batches: list[Batch]) -> dict[str, float | int | dict[str, int]]:
    latencies = sorted(ns for b in batches for ns in b.latencies_ns)
    errors: dict[str, int] = {}
    for b in batches:
        for kind, count in b.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    cpu = [b.cpu for b in batches if b.cpu is not None]

    def mean(values: list[float | None]) -> float:
        known = [v for v in values if v is not None]
        return statistics.fmean(known) if known else float("nan")

    round_p50 = [percentile(sorted(b.latencies_ns), 0.5) / 1e6 for b in batches]
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": percentile(latencies, 0.5) / 1e6,
        "p99_ms": percentile(latencies, 0.99) / 1e6,
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "rps": statistics.median(b.rate for b in batches),
        "round_p50_low_ms": min(round_p50),
        "round_p50_high_ms": max(round_p50),
        "server_cpu_pct": mean([c.server_pct for c in cpu]),
        "postgres_cpu_pct": mean([c.postgres_pct for c in cpu]),
        "client_cpu_pct": mean([c.client_pct for c in cpu]),
        "others_cpu_pct": mean([c.others_pct for c in cpu]),
        "steal_pct": mean([c.steal_pct for c in cpu]),
        "disturbed_batches": sum(1 for c in cpu if c.disturbed),
        "batches": len(batches),
    }


def _p50(batch: Batch) -> float:
    return percentile(sorted(batch.latencies_ns), 0.5)


def _p99(batch: Batch) -> float:
    return percentile(sorted(batch.latencies_ns), 0.99)


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def print_table(args: argparse.Namespace, started: list[systems.System], results: Results) -> dict:
    summary = {key: summarise(batches) for key, batches in results.items()}
    header = (
        f"{'op':5} {'clients':>7}  {'system':18} {'n':>6} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'req/s':>7}  {'p50 by round':>13}  {'cpu: server':>11} {'pg':>4} "
        f"{'client':>6} {'other':>5}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for op in ("read", "write"):
        for clients in args.clients:
            for system in started:
                s = summary[(op, clients, system.name)]
                errors = sum(s["errors"].values())  # type: ignore[union-attr]
                spread = f"{s['round_p50_low_ms']:.2f}-{s['round_p50_high_ms']:.2f}"
                flag = " *" if s["disturbed_batches"] else ""
                print(
                    f"{op:5} {clients:>7}  {system.name:18} {s['requests']:>6} {errors:>4} "
                    f"{s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.1f} "
                    f"{s['rps']:>7.0f}  "
                    f"{spread:>13}  {s['server_cpu_pct']:>10.0f}% {s['postgres_cpu_pct']:>3.0f}% "
                    f"{s['client_cpu_pct']:>5.0f}% {s['others_cpu_pct']:>4.0f}%{flag}"
                )
            print()
    print(
        "cpu: share of all CPUs during the batches (100% = every core busy): the server process, "
        "all postgres processes, this\nload generator, and everything else. * = a batch where "
        "something else took >10% or steal >5%: repeat the run."
    )
    for (op, clients, name), s in summary.items():
        if s["errors"]:
            print(f"errors: {op} x{clients} {name}: {s['errors']}")
    names = [s.name for s in started]
    if PEER in names and PEER_BASE in names:
        print(
            f"\n{PEER_BASE} against {PEER}, same PostgreSQL; median of per-round ratios "
            "(batches seconds apart), range over rounds:"
        )
        for op in ("read", "write"):
            for clients in args.clients:
                ours, peer = results[(op, clients, PEER_BASE)], results[(op, clients, PEER)]
                p50 = [_p50(a) / _p50(b) for a, b in zip(ours, peer, strict=True)]
                p99 = [_p99(a) / _p99(b) for a, b in zip(ours, peer, strict=True)]
                rate = [a.rate / b.rate for a, b in zip(ours, peer, strict=True)]
                print(
                    f"  {op:5} x{clients}: p50 Fader/Unleash {_ratio(p50)}, "
                    f"p99 {_ratio(p99)}, req/s Fader/Unleash {_ratio(rate)}"
                )
        print("  (latency ratio > 1: Fader slower; req/s ratio > 1: Fader faster)")
    return {f"{op} x{c} {name}": s for (op, c, name), s in summary.items()}


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    context = machine_context(args)
    print("Fader server benchmark: flag configuration read and write (admin API)")
    for key, value in context.items():
        print(f"  {key}: {value}")
    print(
        f"  workload: {args.rounds} rounds x ({args.reads} reads + {args.writes} writes) per "
        f"system and client count {args.clients}; {systems.FLAGS} flags seeded"
    )
    with tempfile.TemporaryDirectory(prefix="fader-bench-") as tmp, contextlib.ExitStack() as stack:
        started, notes = start_systems(args, stack, Path(tmp))
        for system in started:
            print(f"  {system.name}: {system.version} (pid {system.server.pid})")
        for note in notes:
            print(f"  NOTE: {note}")
        if not started:
            print("nothing could be started")
            return 1
        results = measure(args, started)
        summary = print_table(args, started, results)
    print(f"\nloadavg at end: {loadavg()}")
    if "unleash" in args.systems and not any(s.name == PEER for s in started):
        print("No peer comparison in this run (see NOTE above): the figures are Fader's alone.")
    if args.json:
        args.json.write_text(
            json.dumps({"context": context, "notes": notes, "results": summary}, indent=2)
        )
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
