"""One release plan in simulated time, decided by the server's own code.

The scheduler ticks every `tick` seconds (the server's ``rollout_tick_seconds``, 5 by default)
at a phase of its own; a plan starts when someone starts it (any time), and changes stage only
at a tick. At each tick where the gate is evaluated, the simulation hands the gate what the
server would read at that instant: the minute rollups of every summary received so far (the
current minute's row holds what arrived up to the tick), windowed by ``seconds_window`` over
the plan's stage starts. Then ``gates.gate_result`` and ``decide.decide`` decide, as in
:mod:`fader_server.services.rollouts.step`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from fleet import BEFORE_PLAN, MINUTE, Fleet, FleetConfig, Mix
from rollups import ArmCounts, MinuteRollups, Mixing

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


@dataclass(frozen=True, slots=True)
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


def share(stage: int) -> float:
    """Fraction of evaluations on the treatment while `stage` is served (stages are
    cumulative: the internal users keep the treatment at the percentage stages)."""
    if stage == BEFORE_PLAN:
        return 0.0
    reached = STAGES[: stage + 1]
    percent = max((s.percent for s in reached if s.percent is not None), default=0.0) / 100
    internal = INTERNAL_SHARE if any(s.segment for s in reached) else 0.0
    return internal + (1 - internal) * percent


def mixes(scenario: Scenario) -> dict[int, Mix]:
    found = {}
    for stage in (BEFORE_PLAN, *range(len(STAGES))):
        control, treatment = scenario.rates(max(stage, 0))
        found[stage] = Mix(share(stage), control, treatment)
    return found


@dataclass(frozen=True, slots=True)
class Settings:
    """How the scheduler and the gate run (the same for every rollout of a run)."""

    fleet: FleetConfig
    tick: float = 5.0
    """The server's ``rollout_tick_seconds``."""
    evaluate_every: int = 1
    """Ticks between gate evaluations (1: every tick, as the server does; 12: once a minute)."""
    pooled: bool = False
    one_by_one: bool = False
    """Handle every summary apart (:class:`fleet.Fleet`): slower, same result."""


@dataclass(frozen=True, slots=True)
class Outcome:
    rolled_back: bool
    minutes: float
    """From the plan's start to its rollback or completion."""
    treatment_exposures: int
    """Treatment evaluations counted in the gate's windows by then."""
    stage: int
    mixing: Mixing


def pooled_result(gate: MetricGate, windows: list[ArmCounts]) -> GateResult:
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
    settings: Settings,
    seed: str,
    *,
    fleet_type: type[Fleet] = Fleet,
    rollups_type: type[MinuteRollups] = MinuteRollups,
) -> Outcome:
    """One rollout; an exact function of `seed`. The types are for ``selfcheck.py``."""
    rng = random.Random(seed)
    plan = Plan("new-checkout", "production", "off", "on", STAGES, (gate,))
    tick_phase = rng.uniform(0.0, settings.tick)
    started = HOUR + rng.uniform(0.0, MINUTE)  # a person starts it: any second of a minute
    fleet = fleet_type(
        settings.fleet,
        mixes(scenario),
        rng,
        since=started - 2 * MINUTE,
        one_by_one=settings.one_by_one,
    )
    fleet.change(started, 0)
    every = settings.tick * settings.evaluate_every
    # the first evaluation: the first tick after the start, then every `evaluate_every` ticks
    first = tick_phase + settings.tick * (int((started - tick_phase) // settings.tick) + 1)
    fleet.schedule(first, every)
    state = decide.start(State(), now=started)
    rollups = rollups_type(started)
    for interval in itertools.count():
        now = first + interval * every
        rollups.add(fleet.receive(now))
        windows = rollups.windows()
        if settings.pooled:
            result = pooled_result(gate, windows)
        else:
            result = gate_result(plan, state.stage, 0, gate, windows)
        step = decide.decide(plan, state, [result], now)
        if step.action in (Action.ROLLBACK, Action.COMPLETE):
            exposed = sum(t.trials for _, t in windows)
            return Outcome(
                step.action is Action.ROLLBACK,
                (now - started) / MINUTE,
                exposed,
                state.stage,
                rollups.mixing(),
            )
        if step.action is Action.ADVANCE:  # a new stage: a new window, a new configuration
            rollups.new_window(step.state.windows[-1])
            fleet.change(now, step.state.stage)
        state = step.state
    raise AssertionError("unreachable: the loop above only ends by returning")
