"""How `fader rollouts` prints plans, templates and incidents (``--json`` prints the API's
JSON instead): tables of stages and gates, durations in words, audiences in words."""

from __future__ import annotations

from typing import Any

from fader_server.cli.output import print_fields, print_heading, print_table

PLAN_COLUMNS = [
    "ID",
    "FLAG",
    "ENV",
    "STATUS",
    "STAGE",
    "IN STAGE",
    "CONTROL",
    "TREATMENT",
    "UPDATED",
]
GATE_COLUMNS = ["GATE", "KIND", "STATUS", "SUMMARY"]


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def stage_label(plan: dict[str, Any]) -> str:
    return f"{plan['stage'] + 1}/{len(plan['stages'])} {plan['stage_name']}"


def plan_row(plan: dict[str, Any]) -> list[Any]:
    return [
        plan["id"],
        plan["flag"],
        plan["environment"],
        plan["status"],
        stage_label(plan),
        seconds(plan["time_in_stage"]),
        plan["control"],
        plan["treatment"],
        plan["updated_at"],
    ]


def approval(stage: dict[str, Any]) -> bool:
    """Whether a stage waits for a person. A template keeps its stages as they were written,
    so a stage that never asked for approval has no `approval` at all (the API's default)."""
    return bool(stage.get("approval", False))


def audience(stage: dict[str, Any], serves: float | None = None, before: float = 0) -> str:
    """A stage's audience; with what it serves once started, when the flag already served
    more than the stage's own percentage before the plan (stages never take it away)."""
    own = stage.get("percent")
    if own is None:
        audience = f"segment {stage['segment']}"
        if serves is not None and before > 0 and serves == before:
            audience += f" (and {serves:g}% of everyone, as the flag served before the plan)"
    else:
        audience = f"{own:g}%"
        if serves is not None and before > 0 and serves == before and own < serves:
            audience += f" (serves {serves:g}%, as the flag did before the plan)"
    return audience


def trust_text(gate: dict[str, Any]) -> str:
    """What a metric gate counts, in words: whose summaries, and which minutes (a minute in
    which the stage changed counts in neither stage, docs/rollouts.md)."""
    kinds = " and ".join(f"{kind} keys" for kind in gate.get("trust") or ["server"])
    return f"summaries from {kinds}, received in whole minutes of each stage"


def show_plan(plan: dict[str, Any]) -> None:
    current = plan["stages"][plan["stage"]]
    evaluation = plan.get("last_evaluation") or {}
    print_fields(
        {
            "id": plan["id"],
            "flag": f"{plan['flag']} in {plan['environment']}",
            "variants": f"{plan['control']} → {plan['treatment']}",
            "status": plan["status"],
            "stage": stage_label(plan),
            "time in stage": (
                f"{seconds(plan['time_in_stage'])} of at least {seconds(current['min_duration'])}"
                if plan["time_in_stage"] is not None
                else ""
            ),
            "started": plan["started_at"],
            "finished": plan["finished_at"],
            "last check": evaluation.get("at"),
            "decision": evaluation.get("reason"),
            "incident": plan["incident"],
            "template": plan["template"],
        }
    )
    serves = plan.get("served_percents") or [None] * len(plan["stages"])
    print_heading("Stages")
    print_table(
        ["#", "NAME", "AUDIENCE", "MIN DURATION", "APPROVAL"],
        (
            [
                i + 1,
                s["name"],
                audience(s, serves[i], plan.get("served_before") or 0),
                seconds(s["min_duration"]),
                approval(s),
            ]
            for i, s in enumerate(plan["stages"])
        ),
    )
    if plan["gates"]:
        print_heading("Gates")
        print_table(["#", "KIND", "WATCHES"], gate_watch_rows(plan["gates"]))
    if evaluation.get("gates"):
        print_heading("Gates (latest check)")
        print_table(
            GATE_COLUMNS,
            ([g["gate"], g["kind"], g["status"], g["summary"]] for g in evaluation["gates"]),
        )


def gate_watch_rows(gates: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for i, gate in enumerate(gates):
        watches: str | None
        if gate["kind"] in ("error_rate", "latency"):
            watches = f"metric '{gate['event']}': {trust_text(gate)}"
        else:
            watches = gate.get("query") or gate.get("url")
        rows.append([i, gate["kind"], watches])
    return rows


def gate_rows(gates: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [i, g["kind"], {k: v for k, v in g.items() if k != "kind" and v is not None}]
        for i, g in enumerate(gates)
    ]


def print_template(template: dict[str, Any]) -> None:
    """A template's stages and gates."""
    print_fields({"key": template["key"], "name": template["name"]})
    print_heading("Stages")
    print_table(
        ["#", "NAME", "AUDIENCE", "MIN DURATION", "APPROVAL"],
        (
            [i + 1, s["name"], audience(s), seconds(s["min_duration"]), approval(s)]
            for i, s in enumerate(template["stages"])
        ),
    )
    print_heading("Gates")
    print_table(["#", "KIND", "SETTINGS"], gate_rows(template["gates"]))
