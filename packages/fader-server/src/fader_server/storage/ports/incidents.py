"""Incidents and their post-mortem action items (:mod:`fader_server.services.incidents`, the
escalation job :mod:`fader_server.runtime.escalation`, and the rollbacks that open incidents).

Both rows are compare-and-swap on a `version`: an update names the version it read and is
refused (None) when someone else wrote first. That is how two people acknowledging at once, or
two replicas escalating the same overdue item, end with exactly one write and one audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from fader_server.storage.ports.records import JSON, Incident


@dataclass(frozen=True, slots=True)
class NewIncident:
    """An incident to open; the rollout fields are None for one opened by hand."""

    project_id: int
    title: str
    severity: str
    opened_by: str
    description: str = ""
    flag: str | None = None
    environment: str | None = None
    plan_id: int | None = None
    stage: int | None = None
    stage_name: str | None = None
    metric: str | None = None
    evidence: tuple[JSON, ...] = ()
    timeline: tuple[JSON, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionItem:
    """One fix a post-mortem asks for: what, who (a project member's username), by when
    (`due_on`, a calendar day in UTC), and whether it is done. `overdue_at` is when the
    escalation job announced it overdue (once; None until then or if it never was)."""

    id: int
    project_id: int
    incident_id: int
    title: str
    owner: str
    due_on: date
    status: str
    done_by: str | None
    done_at: datetime | None
    overdue_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class NewActionItem:
    project_id: int
    incident_id: int
    title: str
    owner: str
    due_on: date
    created_by: str


@dataclass(frozen=True, slots=True)
class ItemCursor:
    """Where a page of action items (ordered by due day, then id) ends."""

    due_on: date
    id: int


class IncidentRows(Protocol):
    def insert_incident(self, incident: NewIncident, at: datetime) -> Incident:
        """Opened (state ``open``, version 1) at `at`."""
        ...

    def get_incident(self, project_id: int, incident_id: int) -> Incident | None: ...

    def list_incidents(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        plan_id: int | None = None,
        state: str | None = None,
    ) -> list[Incident]:
        """Newest first, below `before_id` when given."""
        ...

    def update_incident(self, incident: Incident, at: datetime) -> Incident | None:
        """Write `incident`'s lifecycle fields (state, who acknowledged and resolved it and
        when, the resolution, the post-mortem summary) if the stored row is still at
        `incident.version`; the written row (version + 1, `updated_at` = `at`), or None when
        someone else wrote first."""
        ...


class ActionItemRows(Protocol):
    def insert_action_item(self, item: NewActionItem, at: datetime) -> ActionItem:
        """Status ``open``, version 1."""
        ...

    def get_action_item(self, project_id: int, item_id: int) -> ActionItem | None: ...

    def incident_action_items(self, project_id: int, incident_id: int) -> list[ActionItem]:
        """The incident's items, oldest first."""
        ...

    def list_action_items(
        self,
        project_id: int,
        *,
        limit: int,
        after: ItemCursor | None,
        status: str | None = None,
        due_before: date | None = None,
    ) -> list[ActionItem]:
        """The project's items across incidents, soonest due first (then by id), after
        `after` when given; only those in `status`, and only those due before `due_before`."""
        ...

    def update_action_item(self, item: ActionItem, at: datetime) -> ActionItem | None:
        """Write `item`'s title, owner, due day, status, done and overdue fields if the stored
        row is still at `item.version`; the written row (version + 1), or None when someone
        else wrote first."""
        ...

    def items_to_escalate(self, due_before: date, limit: int) -> list[ActionItem]:
        """Open items of any project due before `due_before` and not yet announced overdue,
        soonest due first."""
        ...
