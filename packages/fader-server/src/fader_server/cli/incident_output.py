"""How `fader incidents show` (and `fader rollouts incident`) print an incident: its state
and who moved it, the rollback's evidence, the post-mortem, the action items and the whole
timeline. States are words, never colours."""

from __future__ import annotations

from typing import Any

from fader_server.cli.output import print_fields, print_heading, print_table
from fader_server.cli.rollout_output import GATE_COLUMNS

ITEM_COLUMNS = ["ID", "INCIDENT", "STATE", "DUE", "OWNER", "TITLE"]


def item_row(item: dict[str, Any]) -> list[Any]:
    return [
        item["id"], item["incident"], item["state"].upper(), item["due_on"], item["owner"],
        item["title"],
    ]  # fmt: skip


def _by(who: str | None, when: str | None) -> str | None:
    return None if who is None else f"{who} at {when}"


def print_incident(incident: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "id": incident["id"],
        "title": incident["title"],
        "state": incident["state"].upper(),
        "severity": incident["severity"],
        "flag": incident["flag"],
        "environment": incident["environment"],
        "opened": _by(incident["opened_by"], incident["opened_at"]),
        "acknowledged": _by(incident["acknowledged_by"], incident["acknowledged_at"]),
        "resolved": _by(incident["resolved_by"], incident["resolved_at"]),
        "resolution": incident["resolution"],
        "description": incident["description"] or None,
    }
    if incident["rollout"] is not None:
        fields.update(
            rollout=incident["rollout"], stage=incident["stage_name"], metric=incident["metric"]
        )
    print_fields({k: v for k, v in fields.items() if v is not None})
    if incident["evidence"]:
        print_heading("Evidence (every gate at the rollback)")
        print_table(
            GATE_COLUMNS,
            ([g["gate"], g["kind"], g["status"], g["summary"]] for g in incident["evidence"]),
        )
    print_heading("Post-mortem")
    print_fields({"summary": incident["summary"] or "(not written yet)"})
    print_heading("Action items")
    print_table(ITEM_COLUMNS, (item_row(i) for i in incident["action_items"]))
    print_heading("Timeline")
    print_table(
        ["AT", "ACTOR", "ACTION", "ON", "COMMENT"],
        (
            [t["at"], t["actor"], t["action"], t["entity"], t.get("comment")]
            for t in incident["events"]
        ),
    )
