"""Guarded-rollout simulation in simulated time: how fast do regressions roll back, and how
often do healthy rollouts roll back by mistake, when gates read the server's minute rollups?

Runs the server's own decision code (``fader_server.rollout_logic``: ``gates.gate_result``,
the mixture SPRT gate over the stage windows, and ``decide.decide``) over synthetic traffic
that takes the path SDK summaries take (docs/events.md): a fleet of SDK instances, each sending
a summary every flush interval, received after a small delay, added to the minute of its
receive time (:mod:`fleet`), windowed by ``minute_windows.seconds_window`` over the stage
starts (:mod:`rollups`), read by the scheduler at its ticks (:mod:`simulate`). Nothing is timed
by the wall clock, so every figure is an exact function of the seed, on any machine and with
any number of worker processes (each rollout has a seed of its own).

    .venv/bin/python bench/guardrails/run.py            # the full run (a few minutes)
    .venv/bin/python bench/guardrails/run.py --quick    # fewer rollouts, for a smoke test
    .venv/bin/python bench/guardrails/run.py --every-tick --gates min200   # the server's cadence
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from figures import clopper_pearson, median_interval, percentile
from fleet import FleetConfig
from simulate import INTERNAL_SHARE, STAGES, Outcome, Scenario, Settings, simulate

from fader_server.rollout_logic.plan import MetricGate

GATES: dict[str, tuple[str, MetricGate]] = {
    "min200": ("min 200", MetricGate("error_rate", "error", min_samples=200)),
    "detect4": ("detect +4 pts", MetricGate("error_rate", "error", min_samples=200, detect=0.04)),
    "detect1": ("detect +1 pt", MetricGate("error_rate", "error", min_samples=200, detect=0.01)),
}
"""Gate settings: a stage may end after its hour once its window has 200 evaluations per arm
(the default gate), and also, with `detect`, once the evidence could catch a regression of +4
points, +1 point with about 90% probability (``stats.samples_to_detect``)."""

RUNS: dict[str, tuple[int, int, int]] = {
    "min200": (1000, 1000, 300),
    "detect4": (1000, 400, 300),
    "detect1": (400, 200, 200),
}
"""Rollouts per gate: healthy, healthy with a traffic shift, each regression. A +1-point gate
keeps a healthy plan going 27 h, with a costlier test at every evaluation, hence fewer runs."""
QUICK = (20, 10, 10)
CHUNK = 20
"""Rollouts per task handed to a worker process."""


def scenarios(healthy: int, shifted: int, regressed: int) -> list[Scenario]:
    return [
        Scenario("healthy 1% → 1%", 0.01, 0.01, healthy),
        # Errors rise for everyone from the 25% stage on (evening traffic, an incident
        # elsewhere) while the treatment stays as good as the control: comparing arms pooled
        # over the plan would see a regression; within each stage there is none.
        Scenario("healthy, shift at 25%", 0.04, 0.04, shifted, from_stage=3),
        Scenario("regression 1% → 2%", 0.01, 0.02, regressed),
        Scenario("regression 1% → 5%", 0.01, 0.05, regressed),
        # A regression that only shows under load: healthy until the 25% stage.
        Scenario("1% → 3% from 25%", 0.01, 0.03, regressed, from_stage=3),
    ]


@dataclass(frozen=True, slots=True)
class Task:
    gate: str
    scenario: Scenario
    first: int
    stop: int


_CONTEXT: dict[str, object] = {}


def _start_worker(settings: Settings, seed: int) -> None:
    _CONTEXT["settings"], _CONTEXT["seed"] = settings, seed


def _work(task: Task) -> tuple[Task, list[Outcome]]:
    settings, seed = _CONTEXT["settings"], _CONTEXT["seed"]
    assert isinstance(settings, Settings)
    gate = GATES[task.gate][1]
    # the same seeds for every gate: each gate sees the same traffic until its decisions differ
    return task, [
        simulate(task.scenario, gate, settings, f"{seed}/{task.scenario.name}/{index}")
        for index in range(task.first, task.stop)
    ]


def tasks(gates: list[str], runs: dict[str, list[Scenario]]) -> Iterator[Task]:
    for gate in gates:
        for scenario in runs[gate]:
            for first in range(0, scenario.rollouts, CHUNK):
                yield Task(gate, scenario, first, min(first + CHUNK, scenario.rollouts))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rollouts (smoke test)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--gates", default=",".join(GATES), help="among " + ", ".join(GATES))
    parser.add_argument("--healthy", type=int, help="healthy rollouts per gate")
    parser.add_argument("--shifted", type=int, help="healthy rollouts with a traffic shift")
    parser.add_argument("--regressed", type=int, help="rollouts per regression scenario")
    parser.add_argument("--per-minute", type=float, default=200, help="evaluations per minute")
    parser.add_argument("--instances", type=int, default=10, help="SDK instances")
    parser.add_argument("--flush-interval", type=float, default=5.0, help="seconds (divides 60)")
    parser.add_argument("--flush-delay", type=float, default=0.25, help="mean seconds")
    parser.add_argument("--delay-cap", type=float, default=2.0, help="max flush delay, seconds")
    parser.add_argument(
        "--propagation",
        type=float,
        default=0.25,
        help="a stage change reaches every SDK instance within this many seconds",
    )
    parser.add_argument("--tick", type=float, default=5.0, help="rollout_tick_seconds")
    parser.add_argument(
        "--every-tick",
        action="store_true",
        help="evaluate the gate at every tick, as the server does (default: once a minute)",
    )
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="compare the arms pooled over the whole plan, as Fader did before stage windows",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    args = parser.parse_args()
    gates = [g for g in args.gates.split(",") if g]
    unknown = set(gates) - set(GATES)
    if unknown:
        parser.error(f"unknown gates: {', '.join(sorted(unknown))}")
    fleet = FleetConfig(
        instances=args.instances,
        per_minute=args.per_minute,
        flush_interval=args.flush_interval,
        delay_mean=args.flush_delay,
        delay_cap=args.delay_cap,
        propagation=args.propagation,
    )
    evaluate_every = 1 if args.every_tick else round(60 / args.tick)
    settings = Settings(fleet, tick=args.tick, evaluate_every=evaluate_every, pooled=args.pooled)
    runs = {}
    for gate in gates:
        healthy, shifted, regressed = QUICK if args.quick else RUNS[gate]
        runs[gate] = scenarios(
            healthy if args.healthy is None else args.healthy,
            shifted if args.shifted is None else args.shifted,
            regressed if args.regressed is None else args.regressed,
        )
    print(
        f"stages: {', '.join(s.name for s in STAGES)} (each ≥ 1 h); internal users = "
        f"{INTERNAL_SHARE:.0%} of traffic; {args.per_minute:g} evaluations/min from "
        f"{fleet.instances} SDK instances, each flushing every {fleet.flush_interval:g} s "
        f"(random phase), received after {fleet.delay_mean:g} s on average (at most "
        f"{fleet.delay_cap:g} s), into the minute of receipt; a stage change reaches the "
        f"instances within {fleet.propagation:g} s; scheduler tick {args.tick:g} s, gate "
        f"evaluated {'at every tick' if args.every_tick else 'at one tick a minute'}; "
        f"error-rate gate: mSPRT, alpha=0.01; seed {args.seed}"
    )
    how = "pooled over the plan (--pooled)" if args.pooled else "per stage window (minute rule)"
    print(f"arms compared {how}")
    started = time.perf_counter()
    found: dict[tuple[str, str], list[Outcome]] = {}
    work = sorted(tasks(gates, runs), key=lambda t: t.gate != "detect1")  # longest first
    with multiprocessing.get_context("fork").Pool(
        max(1, args.jobs), _start_worker, (settings, args.seed)
    ) as pool:
        for task, outcomes in pool.imap_unordered(_work, work):
            found.setdefault((task.gate, task.scenario.name), []).extend(outcomes)
    elapsed = time.perf_counter() - started
    for gate in gates:
        report(gate, runs[gate], found)
    print(f"\nsimulated in {elapsed:.0f} s of wall time with {args.jobs} processes")


def report(gate: str, runs: list[Scenario], found: dict[tuple[str, str], list[Outcome]]) -> None:
    label, _ = GATES[gate]
    print(f"\n== gate: {label}")
    print(
        "| scenario | runs | rolled back [95% CI] | median min to rollback [95% CI] | p90 "
        "| caught at stage | median treatment evaluations |"
    )
    print("|---|---:|---|---:|---:|---|---:|")
    healthy_all: list[Outcome] = []
    mixing: list[Outcome] = []
    for scenario in runs:
        outcomes = found.get((gate, scenario.name), [])
        if not outcomes:
            continue
        mixing.extend(outcomes)
        backs = [o for o in outcomes if o.rolled_back]
        low, high = clopper_pearson(len(backs), len(outcomes))
        minutes = [o.minutes for o in backs]
        stages = Counter(o.stage for o in backs)
        caught = ", ".join(f"{STAGES[i].name} ({stages[i]})" for i in sorted(stages))
        exposures = [float(o.treatment_exposures) for o in backs]
        print(
            f"| {scenario.name} | {len(outcomes)} "
            f"| {len(backs)} ({len(backs) / len(outcomes):.1%}) [{low:.1%}, {high:.2%}] "
            f"| {_median(minutes)} | {_figure(minutes, 0.9)} | {caught or '-'} "
            f"| {_figure(exposures, 0.5)} |"
        )
        if scenario.healthy:
            healthy_all.extend(outcomes)
    for scenario in runs:
        done = [o.minutes / 60 for o in found.get((gate, scenario.name), []) if not o.rolled_back]
        if scenario.healthy and done:
            print(
                f"{scenario.name}: completed in a median {statistics.median(done):.1f} h "
                f"(p90 {percentile(done, 0.9):.1f} h)"
            )
    if healthy_all:
        false = sum(o.rolled_back for o in healthy_all)
        _, high = clopper_pearson(false, len(healthy_all))
        print(
            f"false rollbacks, all healthy rollouts: {false} of {len(healthy_all)} "
            f"(95% upper bound {high:.2%})"
        )
    counted = sum(o.mixing.counted for o in mixing)
    foreign = sum(o.mixing.foreign for o in mixing)
    uncounted = sum(o.mixing.uncounted for o in mixing)
    touched = sum(o.mixing.foreign > 0 for o in mixing)
    if counted:
        print(
            f"evaluations counted in another stage's window: {foreign} of {counted:,} "
            f"({foreign / counted * 1e6:.1f} per million; in {touched} of {len(mixing)} "
            f"rollouts, at most {max(o.mixing.foreign for o in mixing)} in one); in minutes "
            f"that count in no window: {uncounted / (counted + uncounted):.2%}"
        )


def _median(values: list[float]) -> str:
    if not values:
        return ""
    low, high = median_interval(values)
    shown = f"{statistics.median(values):.0f}"
    return shown if math.isinf(high - low) else f"{shown} [{low:.0f}, {high:.0f}]"


def _figure(values: list[float], q: float) -> str:
    if not values:
        return ""
    value = statistics.median(values) if q == 0.5 else percentile(values, q)
    return f"{value:.0f}"


if __name__ == "__main__":
    main()
