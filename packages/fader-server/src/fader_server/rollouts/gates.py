"""Gate results from what was measured: SDK event totals for metric gates, readings for
threshold gates (Prometheus, HTTP checks). No I/O here: the database query lives in storage,
the HTTP calls in :mod:`.gates_io`, and both hand their numbers to these functions.

Metric gates count since the plan started: the exposures of each variant are the trials, and
custom events named after the gate's `event`, reported with the flag and the variant, are the
failures (``error_rate``) or the measurements (``latency``, their `value`). Comparing the arms
over the whole plan, not per stage, is what the sequential test is for: it may be checked at
every tick without inflating false alarms (:mod:`.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fader_server.rollouts.decide import GateResult, GateStatus, metric_result, threshold_result
from fader_server.rollouts.plan import (
    JSON,
    HttpCheckGate,
    MetricGate,
    Plan,
    PrometheusGate,
    State,
)
from fader_server.rollouts.stats import MeanStats, RateCounts
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


def metric_results(plan: Plan, totals: Mapping[str, VariantTotals]) -> list[GateResult]:
    """The sequential test of every metric gate, treatment against control."""
    return [
        metric_result(
            index,
            gate,
            _arm(gate, totals.get(plan.control)),
            _arm(gate, totals.get(plan.treatment)),
        )
        for index, gate in enumerate(plan.gates)
        if isinstance(gate, MetricGate)
    ]


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
