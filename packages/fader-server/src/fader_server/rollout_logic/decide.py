"""What a plan does next: pure functions of (plan, state, gate results, now).

The scheduler gathers gate results (metrics from the database, Prometheus readings, synthetic
check outcomes), calls :func:`decide`, and applies the decision; the simulation in
``bench/guardrails`` calls the same function with simulated traffic and time.

Rules, in order:
1. Any gate reporting a regression rolls the plan back, whatever its status (a paused plan or one
   waiting for approval is still protected).
2. Paused, or waiting for approval: nothing else happens.
3. A stage ends when its minimum duration has passed *and* every metric gate has enough data
   for a verdict; a stage with too little traffic waits (it never advances blind). The status
   says how many samples are missing; a human can still advance by hand.
4. Then: wait for approval if the stage asks for it, else advance (or complete after the last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from fader_server.rollout_logic.plan import (
    JSON,
    HttpCheckGate,
    MetricGate,
    Plan,
    PrometheusGate,
    State,
    Status,
)
from fader_server.rollout_logic.stage_tests import mean_windows, rate_windows
from fader_server.rollout_logic.stats import (
    Comparison,
    MeanStats,
    RateCounts,
    Verdict,
)


class Action(StrEnum):
    WAIT = "wait"
    ADVANCE = "advance"
    AWAIT_APPROVAL = "await_approval"
    COMPLETE = "complete"
    ROLLBACK = "rollback"


class GateStatus(StrEnum):
    HEALTHY = "healthy"
    INSUFFICIENT = "insufficient_data"
    REGRESSION = "regression"


@dataclass(frozen=True, slots=True)
class GateResult:
    index: int
    kind: str
    status: GateStatus
    summary: str
    evidence: JSON = field(default_factory=dict)

    def as_dict(self) -> JSON:
        return {
            "gate": self.index,
            "kind": self.kind,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    state: State
    results: tuple[GateResult, ...] = ()


class InvalidTransitionError(Exception):
    """A human command that does not apply to the plan's status (e.g. resuming a finished
    plan); the message says what the status is."""


Window = tuple[RateCounts | MeanStats, RateCounts | MeanStats]
"""One stage window's arms (control, treatment), as a metric gate counts them: both rates
(``error_rate``) or both means (``latency``)."""


def metric_result(
    index: int,
    gate: MetricGate,
    windows: Sequence[Window],
    *,
    plan_alpha: float,
    stage_alpha: float,
) -> GateResult:
    """Run the two sequential tests of one metric gate over the plan's stage windows, the last
    being the current stage's (:mod:`.stage_tests`; the alphas come from
    :func:`fader_server.rollout_logic.gates.stage_alphas`)."""
    rates: list[tuple[RateCounts, RateCounts]] = []
    means: list[tuple[MeanStats, MeanStats]] = []
    for control, treatment in windows:
        if isinstance(control, RateCounts) and isinstance(treatment, RateCounts):
            rates.append((control, treatment))
        elif isinstance(control, MeanStats) and isinstance(treatment, MeanStats):
            means.append((control, treatment))
    if rates and len(rates) == len(windows):
        comparison = rate_windows(
            rates, plan_alpha=plan_alpha, stage_alpha=stage_alpha,
            min_samples=gate.min_samples, margin=gate.margin, detect=gate.detect,
        )  # fmt: skip
        shown = f"{gate.event} rate {comparison.treatment:.2%} vs control {comparison.control:.2%}"
        combined = comparison.plan_difference
        overall = None if combined is None else f"{combined * 100:+.2f} points"
    elif means and len(means) == len(windows):
        comparison = mean_windows(
            means, plan_alpha=plan_alpha, stage_alpha=stage_alpha,
            min_samples=gate.min_samples, margin=gate.margin, detect=gate.detect,
        )  # fmt: skip
        shown = f"mean {gate.event} {comparison.treatment:.1f} vs control {comparison.control:.1f}"
        combined = comparison.plan_difference
        overall = None if combined is None else f"{combined:+.1f}"
    else:
        raise TypeError("every window must hold two arms of the same kind of statistics")
    shown += " at this stage"
    if comparison.stages > 1 and overall is not None:
        shown += f"; {overall} over the {comparison.stages} stages so far"
    if comparison.verdict is Verdict.INSUFFICIENT:
        status, summary = GateStatus.INSUFFICIENT, f"{shown}; {missing_samples(comparison)}"
    elif comparison.verdict is Verdict.REGRESSION:
        status, summary = GateStatus.REGRESSION, f"regression: {shown} ({_which(comparison)})"
    else:
        status, summary = GateStatus.HEALTHY, shown
    return GateResult(index, gate.kind, status, summary, comparison.as_dict())


def _which(comparison: Comparison) -> str:
    """Which test found the regression, for the incident."""
    found = []
    if comparison.likelihood_ratio >= comparison.threshold:
        found.append("this stage's own test")
    plan, threshold = comparison.plan_likelihood_ratio, comparison.plan_threshold
    if plan is not None and threshold is not None and plan >= threshold:
        found.append("the stages combined")
    return " and ".join(found) or "sequential test"


def missing_samples(comparison: Comparison) -> str:
    """What an undecided comparison still needs, per arm, in words.

    The treatment's figure is :attr:`Comparison.needed` (the minimum sample, or the sample
    that gives the test its power against `detect` if the arms keep growing in their current
    proportion); the control's is the minimum sample or what it will have reached by then.
    A need beyond the search range is said to be beyond it, never given as a figure.
    """
    more_treatment = max(comparison.needed - comparison.treatment_samples, 0)
    more_control = max(comparison.control_needed - comparison.control_samples, 0)
    if comparison.beyond_limit:
        return (
            f"more than {comparison.needed - comparison.treatment_samples:,} more treatment "
            "samples needed (the regression size to detect is very small for this traffic)"
        )
    parts = []
    if more_treatment:
        parts.append(f"{more_treatment:,} more treatment")
    if more_control:
        parts.append(f"{more_control:,} more control")
    if not parts:  # the arms are large enough, the test has not concluded at this tick
        return "waiting for the next check"
    return " and ".join(parts) + " samples needed"


def uncompared_result(
    index: int,
    gate: MetricGate,
    control: RateCounts | MeanStats,
    treatment: RateCounts | MeanStats,
    treatment_variant: str,
) -> GateResult:
    """A metric gate at a stage that leaves no control arm (the plan serves the treatment to
    everyone it reaches): nothing to compare, so it neither holds the stage nor rolls back.
    The counts are kept as evidence; threshold gates still watch the stage."""
    samples = treatment.trials if isinstance(treatment, RateCounts) else treatment.count
    control_samples = control.trials if isinstance(control, RateCounts) else control.count
    summary = (
        f"not compared at this stage: everyone the plan reaches gets '{treatment_variant}', "
        f"so there is no control arm ({samples:,} treatment samples so far)"
    )
    evidence: JSON = {
        "verdict": "not_compared",
        "control_samples": control_samples,
        "treatment_samples": samples,
    }
    return GateResult(index, gate.kind, GateStatus.HEALTHY, summary, evidence)


def threshold_result(
    index: int,
    gate: PrometheusGate | HttpCheckGate,
    bad: bool,
    strikes: int,
    observation: JSON,
) -> tuple[GateResult, int]:
    """Count a reading of a threshold gate; returns the result and the new strike count."""
    strikes = strikes + 1 if bad else 0
    if strikes >= gate.trip_after:
        status = GateStatus.REGRESSION
        summary = f"{gate.kind} failed {strikes} times in a row"
    elif bad:
        status = GateStatus.HEALTHY
        summary = f"{gate.kind} failed {strikes}/{gate.trip_after} times in a row"
    else:
        status, summary = GateStatus.HEALTHY, f"{gate.kind} ok"
    return GateResult(
        index, gate.kind, status, summary, {**observation, "strikes": strikes}
    ), strikes


def decide(plan: Plan, state: State, results: Sequence[GateResult], now: float) -> Decision:
    """The automatic step (see the module docstring)."""
    found = tuple(results)
    if state.status not in (Status.RUNNING, Status.PAUSED, Status.AWAITING_APPROVAL):
        return Decision(Action.WAIT, f"the plan is {state.status.value}", state, found)
    regressions = [r for r in found if r.status is GateStatus.REGRESSION]
    if regressions:
        reason = "; ".join(r.summary for r in regressions)
        ended = state.evolve(status=Status.ROLLED_BACK, finished_at=now)
        return Decision(Action.ROLLBACK, reason, ended, found)
    if state.status is not Status.RUNNING:
        return Decision(Action.WAIT, f"the plan is {state.status.value}", state, found)
    stage = plan.stages[state.stage]
    started = now if state.stage_started_at is None else state.stage_started_at
    elapsed = now - started
    if elapsed < stage.min_duration:
        return Decision(
            Action.WAIT,
            f"stage '{stage.name}': {elapsed:.0f} s of {stage.min_duration:.0f} s",
            state,
            found,
        )
    waiting = [r for r in found if r.status is GateStatus.INSUFFICIENT]
    if waiting:
        reason = f"stage '{stage.name}': " + "; ".join(r.summary for r in waiting)
        return Decision(Action.WAIT, reason, state, found)
    if stage.approval:
        held = state.evolve(status=Status.AWAITING_APPROVAL)
        return Decision(
            Action.AWAIT_APPROVAL, f"stage '{stage.name}' is healthy; approve to go on", held, found
        )
    return _next_stage(plan, state, now, f"stage '{stage.name}' is healthy", found)


def _next_stage(
    plan: Plan, state: State, now: float, reason: str, results: tuple[GateResult, ...] = ()
) -> Decision:
    if state.stage + 1 >= len(plan.stages):
        done = state.evolve(status=Status.COMPLETED, finished_at=now)
        return Decision(Action.COMPLETE, reason + "; the rollout is complete", done, results)
    moved = state.evolve(
        status=Status.RUNNING,
        stage=state.stage + 1,
        stage_started_at=now,
        stage_starts=(*state.windows, now),
    )
    nxt = plan.stages[moved.stage]
    return Decision(Action.ADVANCE, f"{reason}; now at stage '{nxt.name}'", moved, results)


# ----------------------------------------------------------- human commands
def _refuse(state: State, what: str) -> InvalidTransitionError:
    return InvalidTransitionError(f"the plan is {state.status.value}; {what}")


def start(state: State, now: float) -> State:
    if state.status is not Status.PENDING:
        raise _refuse(state, "only a pending plan starts")
    return state.evolve(
        status=Status.RUNNING, stage=0, started_at=now, stage_started_at=now, stage_starts=(now,)
    )


def pause(state: State, now: float) -> State:
    if state.status not in (Status.RUNNING, Status.AWAITING_APPROVAL):
        raise _refuse(state, "only a running plan pauses")
    return state.evolve(status=Status.PAUSED, paused_at=now)


def resume(state: State, now: float) -> State:
    if state.status is not Status.PAUSED:
        raise _refuse(state, "only a paused plan resumes")
    paused_for = 0.0 if state.paused_at is None else now - state.paused_at
    started = now if state.stage_started_at is None else state.stage_started_at
    return state.evolve(
        status=Status.RUNNING, paused_at=None, stage_started_at=started + paused_for
    )


def advance(plan: Plan, state: State, now: float, actor: str) -> Decision:
    """Advance by hand (also how a stage waiting for approval is approved)."""
    if state.status not in (Status.RUNNING, Status.PAUSED, Status.AWAITING_APPROVAL):
        raise _refuse(state, "only a started, unfinished plan advances")
    stage = plan.stages[state.stage]
    return _next_stage(
        plan, state.evolve(paused_at=None), now, f"{actor} advanced past '{stage.name}'"
    )


def abort(state: State, now: float) -> State:
    if state.status.finished:
        raise _refuse(state, "a finished plan cannot be aborted")
    return state.evolve(status=Status.ABORTED, finished_at=now)
