"""Change propagation to SDK streams: how long from an admin API change to every stream having it.

Run: ``.venv/bin/python bench/delivery/propagation.py`` (``--quick`` for a smoke run, ``--help``).

For each setup (SQLite, one process; PostgreSQL, two replicas sharing a fresh database) and each
stream count (1,000 and 10,000 by default), starts fresh `fader serve` processes, seeds a project
of flags and a server SDK key through the admin API, and starts the load client
(``subscribers.py``) in its own process. Once every stream holds its snapshot it toggles a flag
`--rounds` times, `--gap` seconds apart, on the first replica, and measures for every stream the
delay from just before the admin call to the kernel's receipt of the matching ``change`` event.
Prints p50 / p99 / max and the share within 100 ms per round and overall (streams on the replica
that was written and on the other one separately), each server's longest event-loop stall during
the change (its ``/metrics``), the servers' memory per stream, where the CPU went, and whether
every stream received every change exactly once and in order.

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import floor
import servers
from servers import Deployment, call, expect

HERE = Path(__file__).resolve().parent
TARGET_MS = 100.0
FLAG = "flag-0"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", default="1000,10000", help="stream counts (default 1000,10000)"
    )
    parser.add_argument(
        "--setups", default="sqlite,postgresql", help="sqlite (1 process), postgresql (2 replicas)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="measured changes (default 5)")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between changes")
    parser.add_argument("--flags", type=int, default=50, help="flags in the environment (50)")
    parser.add_argument("--batch", type=int, default=250, help="connections opened at once")
    parser.add_argument(
        "--hold",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the load client stops reading from just before each change until the script "
        "asks for the results (default), so it does not compete for the two cores during the "
        "fan-out; arrival times are the kernel's either way. --no-hold: it reads throughout",
    )
    parser.add_argument(
        "--hold-for",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="with --hold, how long after the start of the admin call the client goes on "
        "holding (default 1 s): past the end of the fan-out, so that it does not start reading "
        "10,000 sockets while the server still writes them just because the admin answer came "
        "back first",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure floor.py (bare os.write to as many sockets) after the runs",
    )
    parser.add_argument(
        "--events",
        choices=["patches", "snapshots"],
        default="patches",
        help="what streams ask for: patch events, as the Python SDK does (default), or whole "
        "snapshots, as clients that do not opt in get",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("FADER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a database to connect to for CREATE/DROP DATABASE [env FADER_BENCH_PG]",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 streams, 2 rounds")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.rounds, args.gap, args.flags = "200", 2, 1.0, 5
    args.streams = [int(n) for n in args.streams.split(",")]
    args.setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if set(args.setups) - {"sqlite", "postgresql"} or args.rounds < 1:
        parser.error("bad --setups or --rounds")
    return args


# --- the load client's process ------------------------------------------------------------


class Subscribers:
    """``subscribers.py`` in its own process, spoken to by JSON lines over pipes."""

    def __init__(
        self, dep: Deployment, streams: int, batch: int, log: Path, *, patches: bool
    ) -> None:
        targets = ",".join(f"127.0.0.1:{s.port}" for s in dep.servers)
        argv = [sys.executable, str(HERE / "subscribers.py"), "--target", targets]
        argv += ["--key", dep.sdk_key, "--streams", str(streams), "--batch", str(batch)]
        argv += ["--patches"] if patches else []
        self.log = log
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
            )

    def read(self, timeout: float) -> dict:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            said = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the load client did not answer in {timeout:.0f} s:\n{said}")
        answer: dict = json.loads(line)
        return answer

    def send(self, command: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- one measurement: a setup at one stream count --------------------------------------------


@dataclass(slots=True)
class Round:
    version: int
    write_ms: float  # the admin call, from just before sending to its answer
    latencies_ms: list[list[float]]  # per replica: the streams that got the change
    missing: list[int]  # per replica: streams without this change
    client_lag_ms: list[float]  # user_ts - kernel_ts, all streams
    unexpected: int  # streams whose events this round were not exactly this one change
    waited_s: float
    cpu: dict[str, float]
    stall_ms: list[float] = field(default_factory=list)
    """Per replica: its event loop's longest stall from just before the admin call until the
    client's report (``fader_event_loop_lag_max_seconds``, read from /metrics)."""


@dataclass(slots=True)
class Run:
    setup: str
    replicas: int
    streams: int
    connected: int
    connect_seconds: float
    snapshot_bytes: int
    rss_before_kib: list[int]
    rss_after_kib: list[int]
    rss_end_kib: list[int]
    client_rss_kib: int
    rounds: list[Round] = field(default_factory=list)
    client_anomalies: int = 0  # duplicates, ids out of order, closed streams (client's tally)
    anomalies: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    events_seen: list[str] = field(default_factory=list)  # "patch 712 B": what streams got


def toggle(dep: Deployment, enabled: bool) -> None:
    path = f"/api/v1/projects/{servers.PROJECT}/environments/{servers.ENVIRONMENT}/flags/{FLAG}"
    status, body = call(
        dep.servers[0].port, "POST", path + "/toggle", {"enabled": enabled}, dep.admin()
    )
    expect(status, 200, "toggle", body)


def measure(args: argparse.Namespace, setup: str, streams: int, work: Path) -> Run:
    replicas = 1 if setup == "sqlite" else 2
    with servers.deployment(setup, replicas, args.pg_admin_url) as dep:
        servers.create_project(dep)
        servers.create_flags(dep, args.flags)
        servers.create_sdk_key(dep)
        version, size = servers.snapshot_version(dep)
        pids = [s.pid for s in dep.servers]
        time.sleep(1.0)
        rss_before = [servers.rss_kib(p) for p in pids]
        log = work / f"subscribers-{setup}-{streams}.log"
        client = Subscribers(dep, streams, args.batch, log, patches=args.events == "patches")
        try:
            ready = client.read(timeout=60 + streams / 50)
            failed = set(ready["failed_indices"])  # never connected: not counted as missing
            time.sleep(1.0)
            run = Run(
                setup,
                replicas,
                streams,
                ready["streams"],
                ready["seconds"],
                size,
                rss_before,
                [servers.rss_kib(p) for p in pids],
                [],
                ready["rss_kib"],
                failures=ready["failures"],
            )
            print(
                f"  {setup} x{replicas}, {streams} streams: {ready['streams']} connected in "
                f"{ready['seconds']:.1f} s (failed {ready['failed']}), snapshot ids "
                f"{ready['snapshot_ids']}",
                flush=True,
            )
            expected_ids: list[int] = []
            enabled = False
            for index in range(args.rounds + 1):  # round 0 warms up and is not reported
                time.sleep(args.gap)
                if args.hold:
                    client.send({"cmd": "hold"})
                    client.read(timeout=60)
                for server in dep.servers:  # restarts each loop's longest-stall reading
                    servers.longest_stall_ms(server.port)
                meter = servers.CpuWindow({"server": pids, "client": [client.process.pid]})
                began = time.time()
                toggle(dep, enabled)
                acked = time.time()
                if args.hold:
                    time.sleep(max(0.0, began + args.hold_for - time.time()))
                client.send({"cmd": "await", "count": index + 1, "timeout": 30})
                answer = client.read(timeout=60)
                cpu = meter.stop()
                stalls = [servers.longest_stall_ms(server.port) for server in dep.servers]
                run.events_seen = answer.get("events_seen", [])
                enabled = not enabled
                version, _ = servers.snapshot_version(dep)
                expected_ids.append(version)
                measured = _round(answer, replicas, version, began, acked, cpu, failed)
                measured.stall_ms = stalls
                if index == 0:
                    if measured.unexpected or sum(measured.missing):
                        run.anomalies.append("the warm-up change did not reach every stream once")
                    continue
                run.rounds.append(measured)
                last = run.rounds[-1]
                print(
                    f"    round {index}: version {version}, p99 "
                    f"{_pct(sorted(_all(last)), 0.99):.1f} ms, missing "
                    f"{sum(last.missing)}",
                    flush=True,
                )
            run.rss_end_kib = [servers.rss_kib(p) for p in pids]
            client.send({"cmd": "close"})
            final = client.read(timeout=60)
            run.anomalies += final["examples"]
            run.client_anomalies = final["anomalies"]
            client.process.wait(timeout=30)
            if expected_ids != sorted(set(expected_ids)):
                run.anomalies.append(f"versions after the changes not increasing: {expected_ids}")
        finally:
            client.stop()
    return run


def _round(
    answer: dict,
    replicas: int,
    version: int,
    began: float,
    acked: float,
    cpu: dict,
    failed: set[int],
) -> Round:
    latencies: list[list[float]] = [[] for _ in range(replicas)]
    missing = [0] * replicas
    lag: list[float] = []
    unexpected = 0
    for index, events in enumerate(answer["events"]):
        if index in failed:
            continue
        replica = index % replicas
        unexpected += [e[0] for e in events] != [version]
        match = [e for e in events if e[0] == version]
        if not match:
            missing[replica] += 1
            continue
        _, kernel_ts, user_ts = match[0]
        latencies[replica].append((kernel_ts - began) * 1000)
        lag.append((user_ts - kernel_ts) * 1000)
    return Round(
        version, (acked - began) * 1000, latencies, missing, lag, unexpected, answer["waited"], cpu
    )


# --- statistics and tables ------------------------------------------------------------------


def _all(r: Round) -> list[float]:
    return [v for group in r.latencies_ms for v in group]


def _stalls(values: list[float]) -> str:
    """Per replica, as "12.3" or "12.3 / 4.5"."""
    return " / ".join(f"{v:.1f}" for v in values) or "-"


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else math.nan


def _pct(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank: every figure is a latency that happened."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(1, math.ceil(fraction * len(sorted_values))) - 1]


def _row(label: str, values: list[float], missing: int, extra: str = "") -> str:
    values = sorted(values)
    within = 100 * sum(1 for v in values if v <= TARGET_MS) / (len(values) + missing or 1)
    return (
        f"    {label:34} {len(values):>6} {missing:>5} {_pct(values, 0.5):>8.1f} "
        f"{_pct(values, 0.99):>8.1f} {values[-1] if values else math.nan:>8.1f} {within:>7.1f}%"
        f"{extra}"
    )


def print_run(run: Run) -> dict:
    replicas = run.replicas
    names = ["written replica", "other replica (via PG)"] if replicas > 1 else ["the process"]
    print(
        f"\n{run.setup}, {replicas} process(es), {run.streams} streams "
        f"({run.connected} connected in {run.connect_seconds:.1f} s), snapshot "
        f"{run.snapshot_bytes} bytes, change events {', '.join(run.events_seen) or '?'}"
    )
    header = (
        f"    {'round / streams on':34} {'n':>6} {'miss':>5} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'<=100ms':>8}  write ms  spread ms  client lag p99  "
        "server cpu us/stream  cpu: server client pg other  longest loop stall ms"
    )
    print(header + "\n    " + "-" * (len(header) - 4))
    for number, r in enumerate(run.rounds, 1):
        all_ms = [v for group in r.latencies_ms for v in group]
        cpu = r.cpu
        extra = (
            f" {r.write_ms:>9.1f} {_spread(all_ms):>10.1f} "
            f"{_pct(sorted(r.client_lag_ms), 0.99):>14.1f}  "
            f"{1e6 * cpu['server_seconds'] / max(1, len(all_ms)):>20.0f}  "
            f"{cpu['server']:>11.0f}% {cpu['client']:>5.0f}% {cpu['postgres']:>2.0f}% "
            f"{cpu['others']:>4.0f}%  {_stalls(r.stall_ms):>21}"
        )
        print(_row(f"round {number}: all", all_ms, sum(r.missing), extra))
        if replicas > 1:
            for i, name in enumerate(names):
                print(_row(f"  {name}", r.latencies_ms[i], r.missing[i]))
    for i, name in enumerate(names if replicas > 1 else []):
        pooled = [v for r in run.rounds for v in r.latencies_ms[i]]
        print(_row(f"all rounds: {name}", pooled, sum(r.missing[i] for r in run.rounds)))
    pooled = [v for r in run.rounds for group in r.latencies_ms for v in group]
    missing = sum(sum(r.missing) for r in run.rounds)
    print(_row("all rounds: all streams", pooled, missing))
    per_round_p99 = [_pct(sorted(_all(r)), 0.99) for r in run.rounds]
    longest = max((v for r in run.rounds for v in r.stall_ms), default=math.nan)
    print(
        f"    p99 by round: median {statistics.median(per_round_p99):.1f} ms, range "
        f"{min(per_round_p99):.1f}-{max(per_round_p99):.1f}; admin write median "
        f"{statistics.median(r.write_ms for r in run.rounds):.1f} ms; longest loop stall "
        f"{longest:.1f} ms"
    )
    for i, server_name in enumerate(names):
        grown = run.rss_after_kib[i] - run.rss_before_kib[i]
        streams_here = len(range(i, run.streams, replicas))
        print(
            f"    memory, {server_name}: RSS {run.rss_before_kib[i] / 1024:.0f} MiB before, "
            f"{run.rss_after_kib[i] / 1024:.0f} MiB with {streams_here} streams, "
            f"{run.rss_end_kib[i] / 1024:.0f} MiB after the changes: "
            f"{grown / streams_here:.1f} KiB per stream"
        )
    print(f"    load client RSS {run.client_rss_kib / 1024:.0f} MiB")
    unexpected = sum(r.unexpected for r in run.rounds)
    ok = (
        not run.anomalies
        and run.client_anomalies == 0
        and unexpected == 0
        and run.connected == run.streams
    )
    print(
        "    correctness: "
        + (
            "every stream received every change exactly once, in order (ids increasing)"
            if ok
            else f"PROBLEMS: {unexpected} stream-rounds without exactly their change, "
            f"{run.client_anomalies} client anomalies {run.anomalies[:5]}, "
            f"connect failures {run.failures}"
        )
    )
    return {
        "setup": run.setup,
        "replicas": replicas,
        "streams": run.streams,
        "connected": run.connected,
        "snapshot_bytes": run.snapshot_bytes,
        "events_seen": run.events_seen,
        "p50_ms": _pct(sorted(pooled), 0.5),
        "p99_ms": _pct(sorted(pooled), 0.99),
        "max_ms": max(pooled) if pooled else math.nan,
        "within_100ms_pct": 100
        * sum(1 for v in pooled if v <= TARGET_MS)
        / (len(pooled) + missing or 1),
        "per_round_p99_ms": per_round_p99,
        "cpu_us_per_stream": statistics.median(
            1e6 * r.cpu["server_seconds"] / max(1, len(_all(r))) for r in run.rounds
        ),
        "kib_per_stream": [
            (run.rss_after_kib[i] - run.rss_before_kib[i]) / len(range(i, run.streams, replicas))
            for i in range(replicas)
        ],
        "correct": ok,
        "longest_stall_ms": longest,
        "rounds": [
            {
                "version": r.version,
                "write_ms": r.write_ms,
                "latencies_ms": r.latencies_ms,
                "missing": r.missing,
                "cpu": r.cpu,
                "stall_ms": r.stall_ms,
            }
            for r in run.rounds
        ],
    }


def print_summary(summaries: list[dict]) -> None:
    print(
        "\nSummary (all rounds pooled; target: 99% of streams within 100 ms). cpu us/stream: "
        "server CPU per delivered\nevent, median over rounds; streams x this is roughly the "
        "fan-out time on a core of its own."
    )
    header = (
        f"  {'setup':16} {'streams':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'<=100ms':>8} "
        f"{'KiB/stream':>11} {'cpu us/stream':>14} {'stall ms':>9}  correct"
    )
    print(header + "\n  " + "-" * (len(header) - 2))
    for s in summaries:
        kib = "/".join(f"{k:.0f}" for k in s["kib_per_stream"])
        print(
            f"  {s['setup'] + ' x' + str(s['replicas']):16} {s['streams']:>7} {s['p50_ms']:>8.1f} "
            f"{s['p99_ms']:>8.1f} {s['max_ms']:>8.1f} {s['within_100ms_pct']:>7.1f}% {kib:>11} "
            f"{s['cpu_us_per_stream']:>14.0f} {s['longest_stall_ms']:>9.1f}  "
            f"{'yes' if s['correct'] else 'NO'}"
        )


def measure_floors(args: argparse.Namespace, summaries: list[dict]) -> list[dict]:
    """``floor.py`` at each stream count, with the change events' size: what bare writes to as
    many loopback sockets cost on this machine now, to read the runs' "spread" against."""
    sizes = [int(e.split()[1]) for s in summaries for e in s.get("events_seen", [])]
    size = max(sizes) if sizes else 700
    rows = []
    for streams in args.streams:
        print()
        try:
            found = floor.measure(streams, size, 3, [1, 2])
        except Exception as exc:  # a missing floor must not lose the runs' figures
            print(f"  floor at {streams} streams not measured: {type(exc).__name__}: {exc}")
            continue
        floor.print_rows(found, streams, size)
        rows += [{**row, "streams": streams, "size": size} for row in found]
    return rows


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    servers.raise_nofile_limit()
    context = servers.machine_context(args.pg_admin_url if "postgresql" in args.setups else None)
    print("Fader delivery benchmark: change propagation to SSE streams")
    for key, value in context.items():
        print(f"  {key}: {value}")
    print(
        f"  workload: {args.rounds} changes (+1 warm-up) {args.gap:g} s apart, {args.flags} flags, "
        f"streams {args.streams}, setups {args.setups}, streams ask for {args.events}, "
        f"load client {'holds its reads during each change' if args.hold else 'reads throughout'}"
    )
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"fader-propagation-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    summaries, failed = [], []
    for streams in args.streams:
        for setup in args.setups:
            if setup == "postgresql" and context.get("postgresql", "").startswith("unreachable"):
                failed.append(f"{setup}: PostgreSQL unreachable")
                continue
            try:
                run = measure(args, setup, streams, work)
            except Exception as exc:  # reported; the other runs still go
                failed.append(f"{setup} {streams}: {type(exc).__name__}: {exc}")
                print(f"  FAILED {failed[-1]}", flush=True)
                continue
            summaries.append(print_run(run))
    print_summary(summaries)
    floors = measure_floors(args, summaries) if args.floor else []
    print(f"\nloadavg at start {context['loadavg at start']}, at end {servers.loadavg()}")
    for note in failed:
        print(f"NOTE: {note}")
    if args.json:
        report = {"context": context, "runs": summaries, "floor": floors}
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
