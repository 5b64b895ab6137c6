"""Gate results from what was measured: usage rollup totals for metric gates, readings for
threshold gates (Prometheus, HTTP checks). No I/O here: the database query lives in storage,
the HTTP calls in :mod:`fader_server.runtime.gate_reader`, and both hand their numbers to these
functions.

Metric gates count **per stage window**: what SDKs reported while a stage served, for each
stage reached, apart. SDKs report summaries, which the server adds to per-minute rollups by its
receive time (docs/events.md), so a window is made of whole minutes: a minute counts in a
window when the window started at or before it and the next window starts at or after its end
(:mod:`.minute_windows`); a minute in which a stage changed counts in neither. The evaluations
that served each variant are the trials, and the measurements of the custom metric named after
the gate's `event`, reported with the flag and the variant, are the failures (``error_rate``)
or the measurements (``latency``, their count, sum and sum of squares). A stage is a fixed mix
of who gets what, so within its window the two arms are comparable; across stages they are not
(the treatment grows from internal users to everyone, and traffic changes with the time of
day). The arms are therefore compared within windows only, by the stage's own test (started
afresh at each stage) and by a plan-wide test combining the windows as strata, which keeps
the earlier stages' evidence (:mod:`.stage_tests`); :func:`stage_alphas` shares the gate's
false-alarm budget so the whole plan keeps it.

Only summaries reported with a key of a kind the gate trusts count (server keys by default: a
client key is public), and the minute is the server's receive time, which no client chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fader_server.rollout_logic.apply import compares
from fader_server.rollout_logic.decide import (
    GateResult,
    GateStatus,
    Window,
    metric_result,
    threshold_result,
    uncompared_result,
)
from fader_server.rollout_logic.plan import (
    JSON,
    HttpCheckGate,
    MetricGate,
    Plan,
    PrometheusGate,
    State,
)
from fader_server.rollout_logic.stats import MeanStats, RateCounts
from fader_server.storage.ports import EventTotals, VariantTotals

_NONE = EventTotals(0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Reading:
    """One observation of a threshold gate: whether it was bad, and what was seen."""

    bad: bool
    observation: JSON = field(default_factory=dict)


def _arm(gate: MetricGate, totals: VariantTotals | None) -> RateCounts | MeanStats:
    exposures = 0 if totals is None else totals.exposures
    events = _NONE if totals is None else totals.events.get(gate.event, _NONE)
    if gate.kind == "error_rate":
        return RateCounts(trials=exposures, failures=events.count)
    return MeanStats(count=events.count, total=events.total, total_squares=events.total_squares)


def compared_stages(plan: Plan) -> int:
    """How many of the plan's stages run a comparison (those that leave a control arm)."""
    return sum(1 for stage in range(len(plan.stages)) if compares(plan, stage))


def stage_alphas(plan: Plan, gate: MetricGate) -> tuple[float, float]:
    """The gate's `alpha` shared between its tests (:mod:`.stage_tests`): half for the
    plan-wide test, the other half split evenly between the stages that compare, each stage's
    own test being a new one. By the union bound, the chance that a healthy plan is ever
    rolled back by the gate stays at most `alpha`, whatever the number of stages."""
    return gate.alpha / 2, gate.alpha / (2 * max(compared_stages(plan), 1))


def gate_result(
    plan: Plan, stage: int, index: int, gate: MetricGate, windows: Sequence[Window]
) -> GateResult:
    """One metric gate at `stage`, from its arms counted per stage window (oldest first; the
    last is the current stage's)."""
    if not compares(plan, stage):
        control, treatment = windows[-1]
        return uncompared_result(index, gate, control, treatment, plan.treatment)
    plan_alpha, stage_alpha = stage_alphas(plan, gate)
    return metric_result(index, gate, windows, plan_alpha=plan_alpha, stage_alpha=stage_alpha)


Totals = Mapping[str, VariantTotals]
"""What SDKs reported in one window (its whole minutes), per variant."""


def metric_results(
    plan: Plan,
    totals: Totals | Sequence[Totals] | Callable[[MetricGate], Sequence[Totals]],
    stage: int = 0,
) -> list[GateResult]:
    """Both sequential tests of every metric gate at `stage`, treatment against control.

    `totals`: the usage rollup totals of the plan's stage windows, oldest first (the last is the
    current stage's), or of one window, or a function giving each gate the windows' totals
    of the key kinds it trusts."""
    results = []
    for index, gate in enumerate(plan.gates):
        if not isinstance(gate, MetricGate):
            continue
        if callable(totals):
            found: Sequence[Totals] = totals(gate)
        elif isinstance(totals, Mapping):
            found = [totals]
        else:
            found = totals
        windows: list[Window] = [
            (_arm(gate, w.get(plan.control)), _arm(gate, w.get(plan.treatment)))
            for w in found or [{}]
        ]
        results.append(gate_result(plan, stage, index, gate, windows))
    return results


def due_checks(plan: Plan, state: State, now: float) -> list[int]:
    """Threshold gates to read now: Prometheus queries at every tick, synthetic checks no more
    often than their interval."""
    due = []
    for index, gate in enumerate(plan.gates):
        if isinstance(gate, PrometheusGate):
            due.append(index)
        elif isinstance(gate, HttpCheckGate):
            last = state.last_checks.get(index)
            if last is None or now - last >= gate.interval:
                due.append(index)
    return due


def threshold_results(
    plan: Plan, state: State, readings: Mapping[int, Reading], now: float
) -> tuple[list[GateResult], State]:
    """Count new readings as strikes; a gate not read this time keeps its standing."""
    results: list[GateResult] = []
    strikes = dict(state.gate_strikes)
    checked = dict(state.last_checks)
    for index, gate in enumerate(plan.gates):
        if not isinstance(gate, PrometheusGate | HttpCheckGate):
            continue
        reading = readings.get(index)
        if reading is None:
            held = strikes.get(index, 0)
            summary = f"{gate.kind}: not due; {held}/{gate.trip_after} failures in a row"
            if index not in checked:
                summary = f"{gate.kind}: not read yet"
            results.append(
                GateResult(index, gate.kind, GateStatus.HEALTHY, summary, {"strikes": held})
            )
            continue
        result, strikes[index] = threshold_result(
            index, gate, reading.bad, strikes.get(index, 0), reading.observation
        )
        checked[index] = now
        results.append(result)
    return results, state.evolve(gate_strikes=strikes, last_checks=checked)
