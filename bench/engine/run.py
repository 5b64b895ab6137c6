"""Fader's evaluation engine against peer Python SDKs, in one process.

Run: ``python3.11 bench/engine/run.py`` (``--quick`` for a smoke run, ``--help`` for options).

Sets up ``bench/engine/.venv`` (peers pinned in ``requirements.txt``, the engine from this
checkout), re-executes itself there, checks that every system serves the expected value for
each case, then times the cases with the systems interleaved and prints ns per evaluation,
the spread over rounds, Fader's speed ratio to each peer and the machine's load. See README.md
for what is measured and why it is fair.

This is a script that prints figures, never a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bootstrap

REFERENCE = "fader resolve_boolean"
"""The row every ratio is taken against."""
FLOORS = {"python empty call (floor)"}
LIKE_FOR_LIKE = [
    (
        "flagd resolver vs fader (flagd doc)",
        "flagd resolver (direct)",
        "fader resolve_boolean (flagd doc)",
    )
]
"""Extra summary lines: a peer against Fader evaluating that peer's own document."""
SDK_ON = "fader sdk boolean, summaries on"
SDK_RATIOS = [
    ("sdk summaries on / bare engine", SDK_ON, REFERENCE),
    ("sdk events off / bare engine", "fader sdk boolean, events off", REFERENCE),
    ("sdk summaries on / events off", SDK_ON, "fader sdk boolean, events off"),
    (
        "10k users: sdk summaries on / engine",
        "fader sdk boolean, summaries on, 10k users",
        "fader resolve_boolean, 10k users",
    ),
]
"""Time ratios of the SDK rows (lower is better; 1.0x = as fast as the second row)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per case (default 7)")
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="duration of one timed loop (default 0.2)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of 0.02 s loops")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--systems",
        help=(
            "comma-separated subset of: floor, fader, fader-sdk, launchdarkly, unleash, "
            "growthbook, flagd"
        ),
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 0.02
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    return args


# --- checks ---------------------------------------------------------------------------------


def check(system: Any, cases: Any) -> tuple[dict[str, Any], list[str]]:
    """Evaluate every case once; return the served values and what was wrong, if anything."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for case in cases:
        try:
            value = system.calls[case.label].run_once()
        except Exception as error:  # a peer raising is a finding to report, not a crash
            values[case.label] = None
            problems.append(f"case {case.label} raised {type(error).__name__}: {error}")
            continue
        values[case.label] = value
        expected = case.expected
        if expected is None and system.split_value is not None:
            expected = system.split_value(case.targeting_key)
        if expected is not None and value is not expected and system.package != "python":
            problems.append(f"case {case.label} served {value!r}, expected {expected!r}")
    return values, problems


# --- output -----------------------------------------------------------------------------------


def _ns(value: float) -> str:
    return f"{value:,.0f}"


def _ratio(peer: Any, reference: Any) -> tuple[float, float, float]:
    """peer/reference: of the medians, and the range of the per-round (paired) ratios."""
    paired = [p / r for p, r in zip(peer.ns_per_call, reference.ns_per_call, strict=True)]
    return peer.median / reference.median, min(paired), max(paired)


def print_case(case: Any, series: dict[str, Any], values: dict[str, dict[str, Any]]) -> None:
    """One block per case: every system's median, spread, and time relative to Fader's."""
    print(f"\ncase {case.label}: {case.title}   [targeting key {case.targeting_key}]")
    print(
        f"  {'system':<38}{'value':>6}{'ns/eval':>10}  {'spread (min-max)':<20}"
        "time / Fader's (per-round range)"
    )
    reference = series.get(REFERENCE)
    for name, item in series.items():
        spread = f"{_ns(item.low)}-{_ns(item.high)}"
        served = values[name][case.label]
        served_text = "-" if name in FLOORS else str(served).lower()
        line = f"  {name:<38}{served_text:>6}{_ns(item.median):>10}  {spread:<20}"
        if reference is not None and name not in FLOORS and name != REFERENCE:
            ratio, low, high = _ratio(item, reference)
            line += f"{ratio:6.1f}x  ({low:.1f}-{high:.1f})"
        print(line)


def _summary_line(
    label: str, results: dict[str, dict[str, Any]], labels: list[str], peer: str, fader: str
) -> str | None:
    cells = []
    for case_label in labels:
        by_system = results[case_label]
        if peer not in by_system or fader not in by_system:
            return None
        cells.append(f"{by_system[peer].median / by_system[fader].median:9.1f}x")
    return f"  {label:<40}" + "".join(cells)


def print_summary(results: dict[str, dict[str, Any]], labels: list[str]) -> None:
    """Fader's speed-up over each peer per case: peer median / Fader median (higher = faster)."""
    names = list(next(iter(results.values()), {}))
    peers = [name for name in names if name not in FLOORS and not name.startswith("fader")]
    lines = [_summary_line(peer, results, labels, peer, REFERENCE) for peer in peers]
    lines += [
        _summary_line(label, results, labels, peer, fader) for label, peer, fader in LIKE_FOR_LIKE
    ]
    lines = [line for line in lines if line is not None]
    if not lines:
        return
    print(f"\nFader x faster: peer median / Fader median ({REFERENCE} unless named)")
    print(f"  {'peer':<40}" + "".join(f"{'case ' + label:>10}" for label in labels))
    for line in lines:
        print(line)


def sdk_ratios(results: dict[str, dict[str, Any]], labels: list[str]) -> dict[str, list[float]]:
    """Per case: the SDK rows' time ratios, and how many times faster the SDK with summaries
    on is than the fastest peer SDK (medians of this run)."""
    out: dict[str, list[float]] = {}
    for label, row, against in SDK_RATIOS:
        if all(row in results[c] and against in results[c] for c in labels):
            out[label] = [results[c][row].median / results[c][against].median for c in labels]
    peers = [
        name
        for name in next(iter(results.values()), {})
        if name not in FLOORS and not name.startswith("fader")
    ]
    if peers and all(SDK_ON in results[c] for c in labels):
        out["fastest peer / sdk summaries on (x faster)"] = [
            min(results[c][peer].median for peer in peers) / results[c][SDK_ON].median
            for c in labels
        ]
    return out


def print_sdk_ratios(ratios: dict[str, list[float]], labels: list[str]) -> None:
    if not ratios:
        return
    print("\nFader SDK: time ratios of medians in this run (the last line: peer / SDK)")
    print(f"  {'ratio':<46}" + "".join(f"{'case ' + label:>10}" for label in labels))
    for name, values in ratios.items():
        print(f"  {name:<46}" + "".join(f"{value:9.2f}x" for value in values))


# --- run --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bootstrap.ensure_and_reexec(argv)

    import systems
    import timing
    from cases import CASES

    wanted = list(systems.BUILDERS)
    if args.systems:
        wanted = [name.strip() for name in args.systems.split(",")]
        unknown = set(wanted) - set(systems.BUILDERS)
        if unknown:
            raise SystemExit(f"bench: unknown systems {sorted(unknown)}")
        if "floor" not in wanted:
            wanted.insert(0, "floor")

    print(
        f"Python {platform.python_version()} on {platform.machine()}; "
        f"{args.rounds} rounds of ~{args.seconds} s loops per system and case"
    )
    workdir = Path(tempfile.mkdtemp(prefix="fader-bench-"))
    healthy: list[Any] = []
    report: dict[str, Any] = {"systems": [], "unavailable": {}}
    values: dict[str, dict[str, Any]] = {}
    failures = 0
    for short_name in wanted:
        try:
            built = systems.build(short_name, workdir)
        except Exception as error:  # e.g. an SDK that cannot start offline: report, go on
            report["unavailable"][short_name] = f"{type(error).__name__}: {error}"
            print(f"UNAVAILABLE {short_name}: {type(error).__name__}: {error}")
            failures += 1
            continue
        for system in built:
            served, problems = check(system, CASES)
            values[system.name] = served
            report["systems"].append(
                {
                    "name": system.name,
                    "package": system.package,
                    "version": system.version,
                    "note": system.note,
                    "values": served,
                    "broken": problems,
                }
            )
            if problems:
                failures += 1
                print(f"BROKEN {system.name} {system.version}: " + "; ".join(problems))
            else:
                healthy.append(system)

    print("\nsystems (all checked: A and B serve true; C as listed below):")
    for system in healthy:
        package = f"{system.package} {system.version}"
        print(f"  {system.name:<38}{package:<34}{system.note}")

    meter = timing.LoadMeter()
    results: dict[str, dict[str, Any]] = {}
    case_loads: dict[str, Any] = {}
    started = time.monotonic()
    for case in CASES:
        case_meter = timing.LoadMeter()
        items = {
            system.name: timing.Timeable(
                system.calls[case.label].statement, system.calls[case.label].namespace
            )
            for system in healthy
        }
        results[case.label] = timing.interleaved(items, args.rounds, args.seconds)
        case_loads[case.label] = case_meter.stop()
        print_case(case, results[case.label], values)
        print(f"  load: {case_loads[case.label].describe()}")
    load = meter.stop()
    print_summary(results, [case.label for case in CASES])
    ratios = sdk_ratios(results, [case.label for case in CASES])
    print_sdk_ratios(ratios, [case.label for case in CASES])
    print(f"\nmachine load during timing ({time.monotonic() - started:.0f} s): {load.describe()}")
    if load.disturbed:
        print("  warning: other processes or the hypervisor took CPU; consider repeating the run")

    for system in healthy:
        try:
            system.close()
        except Exception as error:
            print(f"note: closing {system.name} raised {type(error).__name__}: {error}")

    if args.json:
        report.update(
            python=platform.python_version(),
            machine=platform.machine(),
            rounds=args.rounds,
            loop_seconds=args.seconds,
            reference=REFERENCE,
            sdk_ratios=ratios,
            load=load.as_dict(),
            load_by_case={label: window.as_dict() for label, window in case_loads.items()},
            cases=[
                {
                    "label": c.label,
                    "title": c.title,
                    "targeting_key": c.targeting_key,
                    "attributes": c.attributes,
                    "expected": c.expected,
                }
                for c in CASES
            ],
            results={
                label: {
                    name: {
                        "median_ns": s.median,
                        "min_ns": s.low,
                        "max_ns": s.high,
                        "loop_size": s.loop_size,
                        "ns_per_call": s.ns_per_call,
                    }
                    for name, s in by_system.items()
                }
                for label, by_system in results.items()
            },
        )
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
