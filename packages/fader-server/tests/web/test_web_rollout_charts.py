"""Rollout figures read from a plan's latest gate evidence: the error-budget burn (treatment
rate / control rate) and the gate charts, every number written out in text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fader_server.rollout_logic.plan import MetricGate, Plan, Stage, State, Status
from fader_server.services.rollouts.records import PlanStatus
from fader_server.storage.ports import StoredPlan
from fader_server.web import rollout_charts, rollout_view

PLAN = Plan(
    flag="new-checkout",
    environment="production",
    control="off",
    treatment="on",
    stages=(Stage("5%", 3600, percent=5), Stage("25%", 7200, percent=25, approval=True)),
    gates=(MetricGate("latency", "latency_ms"), MetricGate("error_rate", "error")),
)
NOW = 1_800_000_000.0


def _status(gates: list[dict[str, Any]] | None, status: Status = Status.RUNNING) -> PlanStatus:
    state = State(status=status, stage=1, started_at=NOW - 9000, stage_started_at=NOW - 3900)
    when = datetime.fromtimestamp(NOW, UTC)
    stored = StoredPlan(
        id=7, project_id=1, flag=PLAN.flag, environment=PLAN.environment, template=None,
        plan=PLAN.to_dict(), state=state.to_dict(), status=status.value, base_config={},
        last_evaluation=None if gates is None else {"at": when.isoformat(), "gates": gates},
        incident_id=None, version=3, created_by="user:ann", created_at=when, updated_at=when,
    )  # fmt: skip
    return PlanStatus.of(stored, NOW)


def _error_gate(control: float, treatment: float) -> dict[str, Any]:
    return {
        "gate": 1,
        "kind": "error_rate",
        "status": "healthy",
        "summary": "error rate fine",
        "evidence": {
            "control": control,
            "treatment": treatment,
            "likelihood_ratio": "inf",
            "threshold": 100.0,
            "control_samples": 900,
            "treatment_samples": 450,
        },
    }


def test_the_burn_is_the_treatment_error_rate_relative_to_the_control() -> None:
    burn = rollout_view.burn(_status([_error_gate(0.02, 0.024)]))
    assert burn.ratio is not None
    assert abs(burn.ratio - 1.2) < 1e-9
    assert burn.text == "1.2\N{MULTIPLICATION SIGN} control"
    svg = str(rollout_charts.burn_bar(burn, "burn-7"))
    assert 'role="img"' in svg
    assert "Error-budget burn: 1.2\N{MULTIPLICATION SIGN} control</title>" in svg


def test_the_burn_says_why_there_is_no_figure() -> None:
    assert rollout_view.burn(_status(None)).text == "no gate evidence yet"
    assert rollout_view.burn(_status([_error_gate(0.0, 0.0)])).text == (
        "no errors in either arm yet"
    )
    assert rollout_view.burn(_status([_error_gate(0.0, 0.01)])).text == (
        "errors only in the treatment (1.00%)"
    )


def test_a_gate_chart_names_both_arms_with_their_values() -> None:
    plan = _status([_error_gate(0.02, 0.024)])
    gate = next(g for g in rollout_view.gates(plan) if g.is_rate)
    assert (gate.likelihood_ratio, gate.threshold) == ("inf", "100")
    svg = str(rollout_charts.gate_chart(gate, "off", "on", "gate-1-chart"))
    assert ">control (off)</text>" in svg
    assert ">2.00%</text>" in svg
    assert ">treatment (on)</text>" in svg
    assert ">2.40%</text>" in svg
    assert "over 900 samples" in svg
    assert "Gate status: healthy." in svg


def test_stages_say_which_is_current_and_commands_follow_the_status() -> None:
    waiting = _status(None, Status.AWAITING_APPROVAL)
    assert [s.place for s in rollout_view.stages(waiting)] == ["done", "current"]
    assert rollout_view.commands(waiting) == ["pause", "advance", "abort"]
    assert rollout_view.advance_label(waiting) == "Approve and advance"
    assert rollout_view.commands(_status(None, Status.PAUSED))[0] == "resume"
    assert rollout_view.commands(_status(None, Status.ROLLED_BACK)) == []
    assert rollout_view.duration(_status(None).time_in_stage) == "1 h 5 min"
