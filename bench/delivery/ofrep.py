"""OFREP evaluation under bursty load: single and bulk, requests/s and latency from intended send.

Run: ``.venv/bin/python bench/delivery/ofrep.py`` (``--quick`` for a smoke run, ``--help``).

Starts `fader serve` on SQLite and on PostgreSQL (one process each, seeded with `--flags` flags
with targeting rules and splits, and a server SDK key), then drives
``POST /ofrep/v1/evaluate/flags/{key}`` (single) and ``POST /ofrep/v1/evaluate/flags`` (bulk)
with ``ofrep_load.py`` in a process of its own: open-loop, bursty arrivals at a ladder of mean
rates, flags and users drawn from Zipf laws. Steps are interleaved across the setups round by
round. Prints, per setup, mode and offered rate: the achieved requests/s, p50 / p99 / max latency
measured from each request's intended send time, errors, and where the CPU went.

No peer server is compared (see README.md: flagd's OFREP endpoint needs a Go binary that no
registry this machine reaches provides, and Unleash's open-source server has no OFREP route).

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from servers import Deployment, call

HERE = Path(__file__).resolve().parent


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default="sqlite,postgresql", help="one process on each")
    parser.add_argument(
        "--single-rates", default="100,200,400,800", help="mean req/s, single evaluation"
    )
    parser.add_argument("--bulk-rates", default="25,50,100,200", help="mean req/s, bulk")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step (10)")
    parser.add_argument("--burst", type=float, default=4.0, help="peak / mean rate (4)")
    parser.add_argument("--on-mean", type=float, default=0.2, help="mean burst length, s (0.2)")
    parser.add_argument("--flags", type=int, default=200, help="flags seeded (200)")
    parser.add_argument("--users", type=int, default=100_000, help="targeting keys (100,000)")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("FADER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a database to connect to for CREATE/DROP DATABASE [env FADER_BENCH_PG]",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, short steps")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.flags = 1, 3.0, 20
        args.single_rates, args.bulk_rates = "100", "20"
    args.modes = {
        "single": [float(r) for r in args.single_rates.split(",") if r],
        "bulk": [float(r) for r in args.bulk_rates.split(",") if r],
    }
    args.setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if set(args.setups) - {"sqlite", "postgresql"} or args.rounds < 1:
        parser.error("bad --setups or --rounds")
    return args


def check_endpoints(dep: Deployment, flags: int) -> str | None:
    """One request of each kind before any timing; None when both answer as the spec says."""
    port, headers = dep.servers[0].port, dep.sdk()
    context = {"context": {"targetingKey": "user-1", "country": "NL", "plan": "pro"}}
    status, body = call(port, "POST", "/ofrep/v1/evaluate/flags/flag-0", context, headers)
    if status != 200 or not isinstance(body, dict) or "value" not in body:
        return f"single evaluation answered HTTP {status}: {str(body)[:200]}"
    status, body = call(port, "POST", "/ofrep/v1/evaluate/flags", context, headers)
    if status != 200 or not isinstance(body, dict) or len(body.get("flags", [])) != flags:
        return f"bulk evaluation answered HTTP {status}: {str(body)[:200]}"
    return None


def run_step(args: argparse.Namespace, dep: Deployment, mode: str, rate: float, seed: int) -> dict:
    argv = [sys.executable, str(HERE / "ofrep_load.py"), "--port", str(dep.servers[0].port)]
    argv += ["--key", dep.sdk_key, "--mode", mode, "--rate", str(rate)]
    argv += ["--burst", str(args.burst), "--on-mean", str(args.on_mean)]
    argv += ["--duration", str(args.duration), "--flags", str(args.flags)]
    argv += ["--users", str(args.users), "--seed", str(seed)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter = servers.CpuWindow({"server": [dep.servers[0].pid]})
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=args.duration * 10 + 120)
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the generator, once it has exited
    client = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    cpu["client"] = 100 * client / (cpu["wall_seconds"] * (os.cpu_count() or 1))
    cpu["others"] = max(0.0, cpu["others"] - cpu["client"])
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{err.decode(errors='replace')[-2000:]}")
    answer: dict = json.loads(out)
    answer["cpu"] = cpu
    answer["offered"] = answer["requests"] / args.duration
    answer["duration"] = args.duration
    return answer


def _pct(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[max(1, math.ceil(fraction * len(sorted_values))) - 1]


def summarise(steps: list[dict]) -> dict:
    latencies = sorted(r[1] for s in steps for r in s["results"] if r[2] == 200)
    errors: dict[str, int] = {}
    for s in steps:
        for r in s["results"]:
            if r[2] != 200:
                kind = r[3] if len(r) > 3 else f"HTTP {r[2]}"
                errors[kind] = errors.get(kind, 0) + 1
    achieved = [
        sum(1 for r in s["results"] if r[2] == 200) / max(s["wall_s"], s["duration"]) for s in steps
    ]
    lateness = sorted(v for s in steps for v in s["lateness_ms"])
    return {
        "requests": sum(s["requests"] for s in steps),
        "offered": statistics.median(s["offered"] for s in steps),
        "achieved": statistics.median(achieved),
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else math.nan,
        "round_p99_ms": [
            _pct(sorted(r[1] for r in s["results"] if r[2] == 200), 0.99) for s in steps
        ],
        "errors": errors,
        "lateness_p99_ms": _pct(lateness, 0.99),
        "connections": max(s["connections"] for s in steps),
        "server_cpu": statistics.fmean(s["cpu"]["server"] for s in steps),
        "client_cpu": statistics.fmean(s["cpu"]["client"] for s in steps),
        "pg_cpu": statistics.fmean(s["cpu"]["postgres"] for s in steps),
        "others_cpu": statistics.fmean(s["cpu"]["others"] for s in steps),
        "server_ms_per_request": 1000
        * sum(s["cpu"]["server_seconds"] for s in steps)
        / max(1, sum(len(s["results"]) for s in steps)),
    }


def print_tables(args: argparse.Namespace, names: list[str], results: dict) -> dict:
    header = (
        f"{'mode':6} {'setup':11} {'offered':>8} {'achieved':>9} {'n':>6} {'err':>5} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 by round':>15} {'late p99':>9} "
        f"{'conns':>5}  {'srv ms/req':>10}  cpu: server client pg other"
    )
    print("\n" + header + "\n" + "-" * len(header))
    out = {}
    for mode, rates in args.modes.items():
        for rate in rates:
            for name in names:
                steps = results.get((mode, rate, name), [])
                if not steps:
                    continue
                s = summarise(steps)
                out[f"{mode} {rate:g} {name}"] = s
                spread = f"{min(s['round_p99_ms']):.1f}-{max(s['round_p99_ms']):.1f}"
                print(
                    f"{mode:6} {name:11} {s['offered']:>8.0f} {s['achieved']:>9.0f} "
                    f"{s['requests']:>6} {sum(s['errors'].values()):>5} {s['p50_ms']:>8.1f} "
                    f"{s['p99_ms']:>8.1f} {s['max_ms']:>8.1f} {spread:>15} "
                    f"{s['lateness_p99_ms']:>9.1f} {s['connections']:>5}  "
                    f"{s['server_ms_per_request']:>10.2f}  {s['server_cpu']:>11.0f}% "
                    f"{s['client_cpu']:>5.0f}% {s['pg_cpu']:>2.0f}% {s['others_cpu']:>4.0f}%"
                )
            print()
    print(
        "offered: scheduled arrivals / step length; achieved: answers / the step's length (or "
        "the time to the last answer if longer),\nmedian over rounds. Latency from the intended "
        "send time; 'late p99': how late the generator itself sent (high = the\ngenerator, not "
        "the server, fell behind). srv ms/req: server CPU per request. cpu: shares of both cores."
    )
    for key, s in out.items():
        if s["errors"]:
            print(f"errors: {key}: {s['errors']}")
    return out


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    servers.raise_nofile_limit()
    context = servers.machine_context(args.pg_admin_url if "postgresql" in args.setups else None)
    print("Fader delivery benchmark: OFREP evaluation under bursty open-loop load")
    for key, value in context.items():
        print(f"  {key}: {value}")
    print(
        f"  workload: {args.flags} flags (2 rules + a split each), {args.users} users; Zipf flags "
        f"(s=1.1) and users (s=1.0); bursts: peak {args.burst:g}x mean, mean burst "
        f"{args.on_mean:g} s, Poisson inside; {args.duration:g} s per step, {args.rounds} rounds"
    )
    notes: list[str] = []
    deployments: list[Deployment] = []
    with ExitStack() as stack:
        for setup in args.setups:
            if setup == "postgresql" and context.get("postgresql", "").startswith("unreachable"):
                notes.append("postgresql skipped: unreachable")
                continue
            dep = stack.enter_context(servers.deployment(setup, 1, args.pg_admin_url))
            dep.name = setup
            servers.create_project(dep)
            servers.create_flags(dep, args.flags)
            servers.create_sdk_key(dep)
            problem = check_endpoints(dep, args.flags)
            if problem:
                notes.append(f"{setup}: OFREP not measured: {problem}")
                continue
            deployments.append(dep)
            print(f"  {setup}: seeded, pid {dep.servers[0].pid}", flush=True)
        results: dict[tuple[str, float, str], list[dict]] = {}
        cells = [(mode, rate) for mode, rates in args.modes.items() for rate in rates]
        for round_index in range(args.rounds):
            began = time.monotonic()
            for mode, rate in cells:
                shift = round_index % max(1, len(deployments))
                for dep in deployments[shift:] + deployments[:shift]:
                    seed = 1000 * round_index + int(rate)
                    step = run_step(args, dep, mode, rate, seed)
                    results.setdefault((mode, rate, dep.name), []).append(step)
            took = time.monotonic() - began
            print(f"round {round_index + 1}/{args.rounds} took {took:.0f} s", flush=True)
        summary = print_tables(args, [d.name for d in deployments], results)
    print(f"\nloadavg at start {context['loadavg at start']}, at end {servers.loadavg()}")
    print("No peer server in this run: see README.md (flagd needs a Go binary not available here).")
    for note in notes:
        print(f"NOTE: {note}")
    if args.json:
        args.json.write_text(json.dumps({"context": context, "results": summary}, indent=2))
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
