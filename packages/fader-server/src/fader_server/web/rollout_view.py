"""Release plans as people read them: stages with the current one named in words, time in the
stage against its minimum, gate results with their numbers, and the error-budget burn.

Everything here is read from :class:`PlanStatus` (the plan, its state and the scheduler's
latest evaluation); nothing decides anything. The decisions are in
:mod:`fader_server.rollout_logic.decide`, and a page must never show a figure the scheduler did not
compute, so gate numbers come only from the stored evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fader_server.rollout_logic.plan import MetricGate, Status
from fader_server.services.rollouts.records import PlanStatus, stage_name

STATUS_LABELS = {
    Status.PENDING: "Pending",
    Status.RUNNING: "Running",
    Status.PAUSED: "Paused",
    Status.AWAITING_APPROVAL: "Waiting for approval",
    Status.COMPLETED: "Completed",
    Status.ROLLED_BACK: "Rolled back",
    Status.ABORTED: "Aborted",
}


def duration(seconds: float | None) -> str:
    """``3725`` → "1 h 2 min": whole minutes are enough to compare with a stage's minimum."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    hours, minutes = divmod(total // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def number(value: Any) -> float | None:
    """A stored figure as a float; None for what is missing or not finite ("inf", "nan")."""
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


@dataclass(frozen=True, slots=True)
class StageRow:
    number: int
    name: str
    audience: str
    min_duration: str
    approval: bool
    place: str
    """"done", "current" or "next": said in words on the page, not by colour."""


@dataclass(frozen=True, slots=True)
class GateView:
    index: int
    kind: str
    event: str
    trust: tuple[str, ...]
    status: str
    summary: str
    control: float | None
    treatment: float | None
    control_samples: int
    treatment_samples: int
    likelihood_ratio: str
    threshold: str
    plan_likelihood_ratio: str = "—"
    plan_threshold: str = "—"
    stages: int = 1

    @property
    def is_rate(self) -> bool:
        return self.kind == "error_rate"

    @property
    def counts(self) -> str:
        """What the gate counts, in words (the trust and the window)."""
        kinds = " and ".join(f"{kind} SDK keys" for kind in self.trust)
        return (
            f"Counts summaries reported with {kinds}, received in whole minutes of the current "
            "stage (a minute in which the stage changed counts in neither stage)."
        )

    def shown(self, value: float | None) -> str:
        if value is None:
            return "—"
        return f"{value:.2%}" if self.is_rate else f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Burn:
    """The error-rate gate's treatment rate relative to the control's (1.0: no extra burn)."""

    ratio: float | None
    text: str


def status_label(view: PlanStatus) -> str:
    return STATUS_LABELS[view.state.status]


def commands(view: PlanStatus) -> list[str]:
    """The commands the plan's status allows, in the order the page offers them."""
    status = view.state.status
    if status.finished:
        return []
    if status is Status.PENDING:
        return ["abort"]
    return ["resume" if status is Status.PAUSED else "pause", "advance", "abort"]


def advance_label(view: PlanStatus) -> str:
    if view.state.status is Status.AWAITING_APPROVAL:
        return "Approve and advance"
    last = view.state.stage >= len(view.plan.stages) - 1
    return "Complete the release" if last else "Advance to the next stage"


def stages(view: PlanStatus) -> list[StageRow]:
    state = view.state
    rows = []
    for index, stage in enumerate(view.plan.stages):
        if state.status is Status.COMPLETED or index < state.stage:
            place = "done"
        elif index == state.stage and state.status is not Status.PENDING:
            place = "ended here" if state.status.finished else "current"
        else:
            place = "next"
        audience = _audience(view, index)
        rows.append(
            StageRow(
                index + 1,
                stage.name,
                audience,
                duration(stage.min_duration),
                stage.approval,
                place,
            )
        )
    return rows


def _audience(view: PlanStatus, index: int) -> str:
    """Who a stage reaches; once started, with the share the flag already served before the
    plan when that is more (a stage never takes the treatment away)."""
    stage = view.plan.stages[index]
    serves, before = view.served_percent(index), view.served_before or 0
    held = serves is not None and before > 0 and serves == before
    if stage.percent is None:
        audience = f"segment {stage.segment}"
        if held:
            audience += f" (and {serves:g}% of users, as the flag served before the plan)"
        return audience
    audience = f"{stage.percent:g}% of users"
    if held and serves is not None and stage.percent < serves:
        audience += f" (serves {serves:g}%, as the flag did before the plan)"
    return audience


def current_stage(view: PlanStatus) -> str:
    return stage_name(view.plan, view.state)


def min_duration(view: PlanStatus) -> str:
    stage = view.plan.stages[min(view.state.stage, len(view.plan.stages) - 1)]
    return duration(stage.min_duration)


def _results(view: PlanStatus) -> list[dict[str, Any]]:
    evaluation = view.stored.last_evaluation or {}
    return list(evaluation.get("gates") or [])


def gates(view: PlanStatus) -> list[GateView]:
    """The metric gates with their latest evidence (none yet before the first tick)."""
    found = {r.get("gate"): r for r in _results(view)}
    shown = []
    for index, gate in enumerate(view.plan.gates):
        if not isinstance(gate, MetricGate):
            continue
        result = found.get(index) or {}
        evidence = result.get("evidence") or {}
        shown.append(
            GateView(
                index,
                gate.kind,
                gate.event,
                tuple(gate.trust),
                str(result.get("status") or "not checked yet").replace("_", " "),
                str(result.get("summary") or "The scheduler has not looked at this gate yet."),
                number(evidence.get("control")),
                number(evidence.get("treatment")),
                int(evidence.get("control_samples") or 0),
                int(evidence.get("treatment_samples") or 0),
                _figure(evidence.get("likelihood_ratio")),
                _figure(evidence.get("threshold")),
                _figure(evidence.get("plan_likelihood_ratio")),
                _figure(evidence.get("plan_threshold")),
                int(evidence.get("stages") or 1),
            )
        )
    return shown


def other_gates(view: PlanStatus) -> list[dict[str, Any]]:
    """Threshold gates (Prometheus, HTTP checks): their status and summary as text."""
    metric = {i for i, g in enumerate(view.plan.gates) if isinstance(g, MetricGate)}
    return [r for r in _results(view) if r.get("gate") not in metric]


def _figure(value: Any) -> str:
    found = number(value)
    if found is None:
        return "—" if value is None else str(value)
    return f"{found:.3g}"


def burn(view: PlanStatus) -> Burn:
    """From the first error-rate gate's latest evidence: treatment rate / control rate."""
    gate = next((g for g in gates(view) if g.is_rate), None)
    if gate is None:
        return Burn(None, "no error-rate gate")
    if gate.control is None or gate.treatment is None:
        return Burn(None, "no gate evidence yet")
    if gate.control == 0:
        if gate.treatment == 0:
            return Burn(None, "no errors in either arm yet")
        return Burn(None, f"errors only in the treatment ({gate.treatment:.2%})")
    ratio = gate.treatment / gate.control
    return Burn(ratio, f"{ratio:.1f}\N{MULTIPLICATION SIGN} control")
