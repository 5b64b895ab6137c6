"""What an incident leaves behind and how it is read back: the rules' constants, the audit
entries every step appends, and the incident's timeline.

Every write to an incident appends an audit entry in its transaction with
``entity_type="incident"`` and the incident's id as its key (actions ``opened``,
``acknowledged``, ``resolved``, ``reopened``, ``postmortem_updated``); every write to an action
item one with ``entity_type="action_item"`` and ``<incident id>/<item id>`` as its key (actions
``added``, ``updated``, ``done``, ``overdue``). Their diffs say what changed, so the audit log
alone tells the incident's story, and the notification outbox, fed by audit entries, announces
each step without any code of its own here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fader_server.storage.ports import JSON, AuditEntry, Incident, NewAuditEntry
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.incidents import ActionItem

INCIDENT = "incident"
ACTION_ITEM = "action_item"

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED)
SEVERITIES = ("critical", "major", "minor")
ITEM_OPEN, ITEM_DONE = "open", "done"
ITEM_OVERDUE = "overdue"
"""Not a stored status: an open item whose due day has passed (:func:`is_overdue`)."""
ITEM_FILTERS = (ITEM_OPEN, ITEM_OVERDUE, ITEM_DONE)

MAX_ACTION_ITEMS = 3
"""Per incident. A post-mortem that asks for ten fixes gets none of them done: three owned,
dated items are what a team can follow through, and picking them is part of the review."""
MAX_TITLE = 200
MAX_DESCRIPTION = 5_000
MAX_RESOLUTION = 2_000
MAX_SUMMARY = 10_000
MAX_OWNER = 200
TIMELINE_LIMIT = 500
ESCALATION_ACTOR = "fader:escalation"
"""Who the audit log says announced an item overdue (the escalation job, on any replica)."""


def item_key(item: ActionItem) -> str:
    return f"{item.incident_id}/{item.id}"


def today(now: datetime) -> date:
    """The calendar day in UTC: due days are UTC days."""
    return now.astimezone(UTC).date()


def is_overdue(item: ActionItem, now: datetime) -> bool:
    """Open, and its due day has ended (in UTC)."""
    return item.status == ITEM_OPEN and item.due_on < today(now)


def item_state(item: ActionItem, now: datetime) -> str:
    """``open``, ``overdue`` or ``done``: what people are told, in words."""
    if item.status == ITEM_DONE:
        return ITEM_DONE
    return ITEM_OVERDUE if is_overdue(item, now) else ITEM_OPEN


def audit_incident(
    tx: AuditLog,
    incident: Incident,
    action: str,
    actor: str,
    when: datetime,
    diff: list[JSON],
    comment: str | None = None,
) -> None:
    _audit(tx, incident, INCIDENT, str(incident.id), incident.version, action, actor, when,
           diff, comment)  # fmt: skip


def audit_item(
    tx: AuditLog,
    incident: Incident,
    item: ActionItem,
    action: str,
    actor: str,
    when: datetime,
    diff: list[JSON],
    comment: str | None = None,
) -> None:
    _audit(tx, incident, ACTION_ITEM, item_key(item), item.version, action, actor, when,
           diff, comment)  # fmt: skip


def _audit(
    tx: AuditLog,
    incident: Incident,
    entity_type: str,
    key: str,
    version: int,
    action: str,
    actor: str,
    when: datetime,
    diff: list[JSON],
    comment: str | None,
) -> None:
    """One audit entry of an incident or of one of its items (in the incident's environment)."""
    tx.append_audit(
        NewAuditEntry(
            project_id=incident.project_id,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_key=key,
            environment=incident.environment,
            version=version,
            diff=diff,
            comment=comment,
        ),
        when,
    )


def changes(before: Any, after: Any, fields: Sequence[str]) -> list[JSON]:
    """The diff of `fields` between two records (dates as ISO text)."""
    out: list[JSON] = []
    for name in fields:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            out.append({"path": f"/{name}", "before": _plain(old), "after": _plain(new)})
    return out


def item_fields(item: ActionItem) -> list[JSON]:
    """A new item's diff: every field it was created with."""
    return [
        {"path": f"/{name}", "after": _plain(getattr(item, name))}
        for name in ("title", "owner", "due_on")
    ]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One line of an incident's timeline: the incident's own steps, its items' steps, and,
    for a rollback, the plan's transitions and configuration changes recorded with it."""

    at: datetime
    actor: str
    action: str
    entity: str
    key: str
    comment: str | None
    changes: list[JSON] = field(default_factory=list)
    version: int | None = None

    def as_dict(self) -> JSON:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "key": self.key,
            "comment": self.comment,
            "changes": self.changes,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as people read it: with its action items and its timeline, oldest first."""

    incident: Incident
    items: list[ActionItem]
    timeline: list[TimelineEvent]
    now: datetime

    def item_state(self, item: ActionItem) -> str:
        return item_state(item, self.now)

    @property
    def can_add_item(self) -> bool:
        return len(self.items) < MAX_ACTION_ITEMS


def _event(entry: AuditEntry) -> TimelineEvent:
    return TimelineEvent(
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        entity=entry.entity_type,
        key=entry.entity_key,
        comment=entry.comment,
        changes=entry.diff,
        version=entry.version,
    )


def _recorded(item: JSON) -> TimelineEvent:
    """An entry of the timeline a rollback stored with its incident."""
    at = datetime.fromisoformat(str(item.get("at")))
    return TimelineEvent(
        at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
        actor=str(item.get("actor", "")),
        action=str(item.get("action", "")),
        entity=str(item.get("entity", "")),
        key=str(item.get("key", "")),
        comment=item.get("comment"),
        changes=list(item.get("changes") or []),
        version=item.get("version"),
    )


def timeline(tx: AuditLog, incident: Incident, items: Sequence[ActionItem]) -> list[TimelineEvent]:
    """The rollback's recorded timeline (if any) merged with the audit entries of the incident
    and of each of its items, oldest first (ties keep that order: what led to the incident
    before the incident's own steps)."""
    own = tx.list_audit(
        incident.project_id,
        limit=TIMELINE_LIMIT,
        before_id=None,
        entity_types=(INCIDENT,),
        entity_key=str(incident.id),
    )
    for item in items:
        own += tx.list_audit(
            incident.project_id,
            limit=TIMELINE_LIMIT,
            before_id=None,
            entity_types=(ACTION_ITEM,),
            entity_key=item_key(item),
        )
    recorded = [_recorded(t) for t in incident.timeline]
    events = recorded + [_event(e) for e in sorted(own, key=lambda e: e.id)]
    return sorted(events, key=lambda e: e.at)
