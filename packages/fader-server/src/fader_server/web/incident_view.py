"""What the incident pages say, in words: states and severities as text (never colour alone),
and each line of an incident's timeline as a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fader_server.services.incidents.records import IncidentView, TimelineEvent
from fader_server.storage.ports import JSON, Incident

STATE_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}
ITEM_LABELS = {"open": "Open", "overdue": "Overdue", "done": "Done"}
SEVERITY_LABELS = {"critical": "Critical", "major": "Major", "minor": "Minor"}
_INCIDENT_ACTIONS = {
    "opened": "opened the incident",
    "acknowledged": "acknowledged the incident",
    "resolved": "resolved the incident",
    "reopened": "reopened the incident",
    "postmortem_updated": "updated the post-mortem",
}
_ITEM_ACTIONS = {
    "added": "added action item",
    "updated": "changed action item",
    "done": "marked done action item",
    "overdue": "announced overdue action item",
}


def state_label(incident: Incident) -> str:
    return STATE_LABELS.get(incident.state, incident.state)


def severity_label(incident: Incident) -> str:
    return SEVERITY_LABELS.get(incident.severity, incident.severity)


@dataclass(frozen=True, slots=True)
class Line:
    """One timeline entry as the page shows it."""

    event: TimelineEvent
    text: str
    details: list[str]


def _change_text(change: JSON) -> str | None:
    path = str(change.get("path", "")).lstrip("/").replace("_", " ")
    if path in ("evidence", "plan"):
        return None  # shown in the evidence panel / on the plan's page
    before, after = change.get("before"), change.get("after")
    if path == "summary":
        return "post-mortem summary rewritten" if before else "post-mortem summary written"
    if before is None:
        return f"{path}: {after}"
    return f"{path}: {before} → {after}"


def timeline(view: IncidentView) -> list[Line]:
    titles = {f"{i.incident_id}/{i.id}": i.title for i in view.items}
    lines = []
    for event in view.timeline:
        if event.entity == "incident":
            text = _INCIDENT_ACTIONS.get(event.action, event.action)
        elif event.entity == "action_item":
            verb = _ITEM_ACTIONS.get(event.action, event.action)
            text = f"{verb} “{titles.get(event.key, event.key)}”"
        elif event.entity == "config":
            version = f" (version {event.version})" if event.version is not None else ""
            text = f"{event.action}: changed the flag's configuration{version}"
        else:
            text = f"{event.action}: moved the release plan"
        details = [t for t in (_change_text(c) for c in event.changes) if t]
        lines.append(Line(event, text, details))
    return lines


def due_text(due_on: date) -> str:
    return due_on.strftime("%Y-%m-%d")
