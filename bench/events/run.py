"""SDK summaries at production scale: what a fleet of SDK instances costs the server to record.

Run: ``.venv/bin/python bench/events/run.py`` (the issue's case: 100 instances, 10 million
evaluations in 10 minutes, on SQLite and on PostgreSQL; ``--quick`` for a one-minute smoke run,
``--help`` for the knobs).

For each backend it starts a fresh `fader serve` (SQLite in a temporary directory, or a fresh
PostgreSQL database created under a random name and dropped at the end), seeds a project of
flags with rules and splits and a server SDK key through the admin API, and starts
`--processes` load processes (``instances.py``) that host the SDK instances: real
``FaderClient`` objects that evaluate locally and send a summary every flush interval. When
they have closed (which sends the last summaries) it reads the database and prints:

- evaluations the instances made, and evaluations the stored rollups represent (they must be
  equal: a summary is exact), per second;
- summary requests and bytes the instances sent;
- rollup rows and bytes stored, as measured and per hour of such traffic;
- the server's CPU: seconds used over the run, as a share of one core, and per summary request.

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "delivery"))

import servers  # noqa: E402  (bench/delivery/servers.py: deployments, seeding, /proc)

TABLES = ("usage_minutes", "usage_hours", "debug_events")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--instances", type=int, default=100, help="SDK instances (100)")
    parser.add_argument("--processes", type=int, default=2, help="load processes (2)")
    parser.add_argument(
        "--evaluations", type=float, default=10e6, help="evaluations in all (10 million)"
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="duration (600)")
    parser.add_argument("--flags", type=int, default=20, help="flags evaluated (20)")
    parser.add_argument("--users", type=int, default=100_000, help="distinct users (100,000)")
    parser.add_argument("--flush", type=float, default=5.0, help="SDK flush interval (5 s)")
    parser.add_argument("--quick", action="store_true", help="20 instances, 60 s, 200,000")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("FADER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.seconds, args.evaluations = 20, 60.0, 200_000.0
    return args


def stored(dep: servers.Deployment, backend: str, data_dir: Path | None, db_url: str | None) -> Any:
    """Rows and bytes of the usage tables, and the evaluations the rollups represent."""
    evaluation_sql = (
        "SELECT flag, variant, SUM(count) FROM usage_minutes WHERE metric = '' "
        "GROUP BY flag, variant"
    )
    metric_sql = "SELECT COALESCE(SUM(count), 0) FROM usage_minutes WHERE metric = 'errors'"
    rows: dict[str, int] = {}
    size: dict[str, int] = {}
    if backend == "sqlite":
        assert data_dir is not None
        with sqlite3.connect(data_dir / "fader.db") as conn:
            for table in TABLES:
                rows[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                try:  # dbstat: the pages of each table and its indexes
                    size[table] = conn.execute(
                        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? "
                        "OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = ?)",
                        (table, table),
                    ).fetchone()[0]
                except sqlite3.OperationalError:
                    size[table] = -1
            evaluations = {(f, v): int(n) for f, v, n in conn.execute(evaluation_sql)}
            errors = int(conn.execute(metric_sql).fetchone()[0])
    else:
        assert db_url is not None
        with psycopg.connect(db_url) as conn:
            for table in TABLES:
                rows[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                size[table] = conn.execute(
                    "SELECT pg_total_relation_size(%s)", (table,)
                ).fetchone()[0]
            evaluations = {(f, v): int(n) for f, v, n in conn.execute(evaluation_sql)}
            errors = int(conn.execute(metric_sql).fetchone()[0])
    return rows, size, evaluations, errors


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    rate = args.evaluations / args.seconds / args.instances
    with servers.deployment(backend, 1, args.pg_admin_url) as dep:
        servers.create_project(dep)
        flags = servers.create_flags(dep, args.flags)
        servers.create_sdk_key(dep)
        server = dep.servers[0]
        data_dir = None
        db_url = None
        argv = server.process.args
        assert isinstance(argv, list)
        if backend == "sqlite":
            data_dir = Path(argv[argv.index("--data-dir") + 1])
        else:
            name = argv[argv.index("--database-url") + 1].rsplit("/", 1)[1]
            db_url = urlunsplit(urlsplit(args.pg_admin_url)._replace(path="/" + name))
        per_process = [
            args.instances // args.processes + (1 if i < args.instances % args.processes else 0)
            for i in range(args.processes)
        ]
        loads = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "instances.py"),
                    "--url",
                    f"http://127.0.0.1:{server.port}",
                    "--key",
                    dep.sdk_key,
                    "--flags",
                    ",".join(flags),
                    "--instances",
                    str(count),
                    "--rate",
                    str(rate),
                    "--seconds",
                    str(args.seconds),
                    "--users",
                    str(args.users),
                    "--flush",
                    str(args.flush),
                    "--seed",
                    str(index + 1),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for index, count in enumerate(per_process)
        ]
        for load in loads:  # every instance has its configuration
            assert load.stdout is not None
            if json.loads(load.stdout.readline() or "{}").get("ready") is not True:
                raise RuntimeError("a load process did not start")
        load_avg_start = servers.loadavg()
        cpu0, wall0 = servers.cpu_seconds(server.pid), time.monotonic()
        pg0 = servers.postgres_seconds() if backend == "postgresql" else 0.0
        reports = []
        for load in loads:
            out, _ = load.communicate()
            reports.append(json.loads(out.strip().splitlines()[-1]))
        time.sleep(1.0)  # the last summaries' transactions have committed when answered
        cpu = servers.cpu_seconds(server.pid) - cpu0
        pg_cpu = servers.postgres_seconds() - pg0 if backend == "postgresql" else 0.0
        wall = time.monotonic() - wall0
        rows, size, evaluations, errors = stored(dep, backend, data_dir, db_url)
    made: Counter[tuple[str, str]] = Counter()
    for report in reports:
        for key, count in report["evaluations"].items():
            flag, variant = key.split("\t")
            made[(flag, variant)] += count
    made_total = sum(made.values())
    stored_total = sum(evaluations.values())
    requests = sum(r["requests"] for r in reports)
    return {
        "backend": backend,
        "load": f"{load_avg_start} -> {servers.loadavg()}",
        "seconds": wall,
        "made": made_total,
        "stored": stored_total,
        "exact": dict(made) == {(f, v if v else "None"): n for (f, v), n in evaluations.items()},
        "errors_made": sum(r["errors"] for r in reports),
        "errors_stored": errors,
        "requests": requests,
        "failed": sum(r["failed_requests"] for r in reports),
        "bytes": sum(r["bytes"] for r in reports),
        "dropped": sum(r["dropped"] for r in reports),
        "rows": rows,
        "size": size,
        "cpu": cpu,
        "pg_cpu": pg_cpu,
    }


def show(result: dict[str, Any], args: argparse.Namespace) -> None:
    seconds = result["seconds"]
    minutes = args.seconds / 60
    rows, size = result["rows"], result["size"]
    total_rows = sum(rows.values())
    total_bytes = sum(max(0, s) for s in size.values())
    minute_rows_per_hour = rows["usage_minutes"] / minutes * 60
    print(f"\n## {result['backend']}  (load {result['load']})")
    print("| figure | value |\n| --- | --- |")
    print(f"| evaluations made by the instances | {result['made']:,} |")
    print(f"| evaluations the rollups represent | {result['stored']:,} |")
    print(f"| exact per flag and variant | {'yes' if result['exact'] else 'NO'} |")
    made, kept = result["errors_made"], result["errors_stored"]
    print(f"| tracked errors made / stored | {made:,} / {kept:,} |")
    print(f"| evaluations per second represented | {result['stored'] / seconds:,.0f} |")
    print(f"| summary requests (failed) | {result['requests']:,} ({result['failed']}) |")
    per_request = result["bytes"] / max(1, result["requests"])
    print(f"| bytes sent | {result['bytes']:,} ({per_request:,.0f} per request) |")
    print(f"| items dropped by the SDKs | {result['dropped']:,} |")
    for table in TABLES:
        print(f"| rows / bytes in {table} | {rows[table]:,} / {size[table]:,} |")
    print(f"| rows / bytes stored in all | {total_rows:,} / {total_bytes:,} |")
    print(
        f"| minute rows per hour of this traffic | {minute_rows_per_hour:,.0f} "
        f"(+ {rows['usage_hours']:,} hour rows) |"
    )
    share = 100 * result["cpu"] / seconds
    print(f"| server CPU | {result['cpu']:.1f} s = {share:.2f}% of one core |")
    if result["backend"] == "postgresql":
        pg_share = 100 * result["pg_cpu"] / seconds
        print(f"| PostgreSQL CPU | {result['pg_cpu']:.1f} s = {pg_share:.2f}% of one core |")
    per = 1000 * result["cpu"] / max(1, result["requests"])
    print(f"| server CPU per summary request | {per:.2f} ms |")


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    servers.raise_nofile_limit()
    print(
        f"# bench/events: {args.instances} SDK instances in {args.processes} processes, "
        f"{args.evaluations:,.0f} evaluations over {args.seconds:.0f} s, {args.flags} flags, "
        f"{args.users:,} users, flush every {args.flush:g} s"
    )
    for key, value in servers.machine_context(args.pg_admin_url).items():
        print(f"# {key}: {value}")
    for backend in args.backends.split(","):
        show(run_backend(args, backend), args)


if __name__ == "__main__":
    main(sys.argv[1:])
