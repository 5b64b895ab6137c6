"""Guarded-rollout simulation in simulated time: how fast do regressions roll back, and how
often do healthy rollouts roll back by mistake?

Runs the server's own decision code (``fader_server.rollout_logic``: the mixture SPRT gate as
``gates.gate_result`` applies it, and ``decide``) over synthetic traffic, minute by minute, for
many rollouts per scenario. As on the server, the gate compares the arms over the current
stage's window (counts start afresh at each stage), at the stage's share of the gate's alpha,
and does not compare at the 100% stage (no control arm is left). Nothing is timed by the wall
clock: a "minute" is one step of the loop, so results are exact functions of the seed and
reproducible on any machine.

    .venv/bin/python bench/guardrails/run.py            # the full run (about a minute)
    .venv/bin/python bench/guardrails/run.py --quick    # fewer rollouts, for a smoke test
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass

from fader_server.rollout_logic import decide
from fader_server.rollout_logic.decide import Action, GateResult
from fader_server.rollout_logic.gates import gate_result
from fader_server.rollout_logic.plan import MetricGate, Plan, Stage, State
from fader_server.rollout_logic.stats import RateCounts

HOUR = 3600.0
STAGES = (
    Stage("internal users", HOUR, segment="internal-users"),
    Stage("1%", HOUR, percent=1),
    Stage("5%", HOUR, percent=5),
    Stage("25%", HOUR, percent=25),
    Stage("50%", HOUR, percent=50),
    Stage("100%", HOUR, percent=100),
)
INTERNAL_SHARE = 0.02
"""Share of traffic from internal users (the first stage's audience)."""


@dataclass(frozen=True)
class Scenario:
    """Error rates of the control and the treatment, from the stage `from_stage` on (before
    it: `before`, both arms; a healthy treatment until then by default)."""

    name: str
    control_rate: float
    treatment_rate: float
    rollouts: int
    from_stage: int = 0
    before: float = 0.01

    @property
    def healthy(self) -> bool:
        return self.treatment_rate == self.control_rate

    def rates(self, stage: int) -> tuple[float, float]:
        if stage < self.from_stage:
            return self.before, self.before
        return self.control_rate, self.treatment_rate


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial(n, p) without numpy: geometric gaps when few successes are expected (exact),
    the normal approximation when many are (mean and variance > 30 each side)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if n * p > 30 and n * (1 - p) > 30:
        value = round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
        return min(max(value, 0), n)
    flip = p > 0.5
    q = 1 - p if flip else p
    log_q = math.log1p(-q)
    count, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            break
        count += 1
    return n - count if flip else count


def share(stage: Stage, reached: tuple[Stage, ...]) -> float:
    """Fraction of traffic on the treatment at `stage` (stages are cumulative)."""
    percent = max((s.percent for s in reached if s.percent is not None), default=0.0) / 100
    internal = INTERNAL_SHARE if any(s.segment for s in reached) else 0.0
    return internal + (1 - internal) * percent


@dataclass
class Outcome:
    rolled_back: bool
    minutes: int
    treatment_exposures: int
    stage: int


def pooled_result(gate: MetricGate, windows: list[tuple[RateCounts, RateCounts]]) -> GateResult:
    """The comparison Fader made before stage windows, for `--pooled`: both arms pooled since
    the plan started, one test at the gate's alpha, at every stage (the 100% stage too)."""
    control = RateCounts(sum(c.trials for c, _ in windows), sum(c.failures for c, _ in windows))
    treatment = RateCounts(sum(t.trials for _, t in windows), sum(t.failures for _, t in windows))
    return decide.metric_result(
        0, gate, [(control, treatment)], plan_alpha=gate.alpha, stage_alpha=gate.alpha
    )


def simulate(
    scenario: Scenario,
    gate: MetricGate,
    per_minute: int,
    check_every: int,
    rng: random.Random,
    pooled: bool = False,
) -> Outcome:
    plan = Plan("new-checkout", "production", "off", "on", STAGES, (gate,))
    state = decide.start(State(), now=0.0)
    windows: list[tuple[RateCounts, RateCounts]] = [(RateCounts(0, 0), RateCounts(0, 0))]
    minute = 0
    while True:
        minute += 1
        now = minute * 60.0
        reached = STAGES[: state.stage + 1]
        on = binomial(rng, per_minute, share(STAGES[state.stage], reached))
        off = per_minute - on
        control_rate, treatment_rate = scenario.rates(state.stage)
        control, treatment = windows[-1]
        windows[-1] = (
            RateCounts(control.trials + off, control.failures + binomial(rng, off, control_rate)),
            RateCounts(
                treatment.trials + on, treatment.failures + binomial(rng, on, treatment_rate)
            ),
        )
        if minute % check_every:
            continue
        if pooled:
            result = pooled_result(gate, windows)
        else:
            result = gate_result(plan, state.stage, 0, gate, windows)
        step = decide.decide(plan, state, [result], now)
        exposed = sum(t.trials for _, t in windows)
        if step.action is Action.ROLLBACK:
            return Outcome(True, minute, exposed, state.stage)
        if step.action is Action.COMPLETE:
            return Outcome(False, minute, exposed, state.stage)
        if step.action is Action.ADVANCE:  # a new stage: a new window
            windows.append((RateCounts(0, 0), RateCounts(0, 0)))
        state = step.state


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rollouts (smoke test)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--per-minute", type=int, default=200, help="requests per minute")
    parser.add_argument("--check-every", type=int, default=1, help="minutes between checks")
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="compare the arms pooled over the whole plan, as Fader did before stage windows",
    )
    args = parser.parse_args()
    healthy_runs, regressed_runs = (60, 30) if args.quick else (400, 200)
    scenarios = [
        Scenario("healthy 1% → 1%", 0.01, 0.01, healthy_runs),
        # Errors rise for everyone from the 25% stage on (evening traffic, an incident
        # elsewhere) while the treatment stays as good as the control: comparing arms pooled
        # over the plan would see a regression; within each stage there is none.
        Scenario("healthy, shift at 25%", 0.04, 0.04, healthy_runs, from_stage=3),
        Scenario("regression 1% → 2%", 0.01, 0.02, regressed_runs),
        Scenario("regression 1% → 5%", 0.01, 0.05, regressed_runs),
        # A regression that only shows under load: healthy until the 25% stage.
        Scenario("1% → 3% from 25%", 0.01, 0.03, regressed_runs, from_stage=3),
    ]
    gates = [
        ("min 200 samples per arm", MetricGate("error_rate", "error", min_samples=200)),
        (
            "min 200, and enough to catch +4 points",
            MetricGate("error_rate", "error", min_samples=200, detect=0.04),
        ),
        (
            "min 200, and enough to catch +1 point",
            MetricGate("error_rate", "error", min_samples=200, detect=0.01),
        ),
    ]
    print(
        f"stages: {', '.join(s.name for s in STAGES)} (each ≥ 1 h); internal users = "
        f"{INTERNAL_SHARE:.0%} of traffic; {args.per_minute} requests/min; gate checked every "
        f"{args.check_every} min; error-rate gate: mSPRT, alpha=0.01; seed {args.seed}"
    )
    how = "pooled over the plan (--pooled)" if args.pooled else "per stage window"
    print(f"arms compared {how}")
    started = time.perf_counter()
    for label, gate in gates:
        print(f"\n== gate: {label}")
        report(scenarios, gate, args)
    print(f"\nsimulated in {time.perf_counter() - started:.1f} s of wall time")


def report(scenarios: list[Scenario], gate: MetricGate, args: argparse.Namespace) -> None:
    header = (
        f"{'scenario':<22} {'runs':>5} {'rolled back':>12} {'median min':>11} "
        f"{'p90 min':>8} {'median exp.':>12} {'caught at stage (count)'}"
    )
    print(header)
    print("-" * len(header))
    for scenario in scenarios:
        rng = random.Random(f"{args.seed}-{scenario.name}")
        outcomes = [
            simulate(scenario, gate, args.per_minute, args.check_every, rng, args.pooled)
            for _ in range(scenario.rollouts)
        ]
        backs = [o for o in outcomes if o.rolled_back]
        minutes = [float(o.minutes) for o in backs]
        exposures = [float(o.treatment_exposures) for o in backs]
        stages: dict[str, int] = {}
        for o in backs:
            name = STAGES[o.stage].name
            stages[name] = stages.get(name, 0) + 1
        print(
            f"{scenario.name:<22} {len(outcomes):>5} "
            f"{len(backs) / len(outcomes):>11.1%} "
            f"{statistics.median(minutes) if minutes else float('nan'):>11.0f} "
            f"{percentile(minutes, 0.9) if minutes else float('nan'):>8.0f} "
            f"{statistics.median(exposures) if exposures else float('nan'):>12.0f} "
            f"{', '.join(f'{k} ({v})' for k, v in stages.items()) or '-'}"
        )
        done = [o.minutes / 60 for o in outcomes if not o.rolled_back]
        if scenario.healthy and done:
            print(
                f"{'':<22} healthy rollouts completed in a median "
                f"{statistics.median(done):.1f} h (p90 {percentile(done, 0.9):.1f} h)"
            )


if __name__ == "__main__":
    main()
