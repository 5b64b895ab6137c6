"""Incidents and their action items, in memory (the SQL counterpart is
:mod:`fader_server.storage.sql.incidents`): the same compare-and-swap on versions, the same
orderings."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.ports import Incident
from fader_server.storage.ports.incidents import (
    ActionItem,
    ItemCursor,
    NewActionItem,
    NewIncident,
)


def _due_order(item: ActionItem) -> tuple[date, int]:
    return (item.due_on, item.id)


class IncidentQueries(TransactionState):
    # --------------------------------------------------------------- incidents
    def insert_incident(self, incident: NewIncident, at: datetime) -> Incident:
        tables = self.write()
        if incident.plan_id is not None and incident.plan_id not in tables.plans:
            raise self.conflict()  # the foreign key
        incident_id = tables.next_id("incidents")
        stored = Incident(
            id=incident_id,
            project_id=incident.project_id,
            plan_id=incident.plan_id,
            opened_at=at,
            stage=incident.stage,
            stage_name=incident.stage_name,
            metric=incident.metric,
            evidence=fresh(list(incident.evidence)),
            timeline=fresh(list(incident.timeline)),
            title=incident.title,
            severity=incident.severity,
            flag=incident.flag,
            environment=incident.environment,
            description=incident.description,
            opened_by=incident.opened_by,
            state="open",
            acknowledged_by=None,
            acknowledged_at=None,
            resolved_by=None,
            resolved_at=None,
            resolution=None,
            summary="",
            version=1,
            updated_at=at,
        )
        tables.incidents[incident_id] = stored
        return fresh(stored)

    def get_incident(self, project_id: int, incident_id: int) -> Incident | None:
        found = self.tables.incidents.get(incident_id)
        return None if found is None or found.project_id != project_id else fresh(found)

    def list_incidents(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        plan_id: int | None = None,
        state: str | None = None,
    ) -> list[Incident]:
        found = [
            i
            for i in self.tables.incidents.values()
            if i.project_id == project_id
            and (before_id is None or i.id < before_id)
            and (plan_id is None or i.plan_id == plan_id)
            and (state is None or i.state == state)
        ]
        return [fresh(i) for i in sorted(found, key=lambda i: -i.id)[:limit]]

    def update_incident(self, incident: Incident, at: datetime) -> Incident | None:
        tables = self.write()
        stored = tables.incidents.get(incident.id)
        if (
            stored is None
            or stored.project_id != incident.project_id
            or stored.version != incident.version
        ):
            return None
        written = replace(
            stored,
            state=incident.state,
            acknowledged_by=incident.acknowledged_by,
            acknowledged_at=incident.acknowledged_at,
            resolved_by=incident.resolved_by,
            resolved_at=incident.resolved_at,
            resolution=incident.resolution,
            summary=incident.summary,
            version=stored.version + 1,
            updated_at=at,
        )
        tables.incidents[incident.id] = written
        return fresh(written)

    # ------------------------------------------------------------ action items
    def insert_action_item(self, item: NewActionItem, at: datetime) -> ActionItem:
        tables = self.write()
        incident = tables.incidents.get(item.incident_id)
        if incident is None or incident.project_id != item.project_id:
            raise self.conflict()  # the foreign key
        item_id = tables.next_id("action_items")
        stored = ActionItem(
            id=item_id,
            project_id=item.project_id,
            incident_id=item.incident_id,
            title=item.title,
            owner=item.owner,
            due_on=item.due_on,
            status="open",
            done_by=None,
            done_at=None,
            overdue_at=None,
            created_by=item.created_by,
            created_at=at,
            updated_at=at,
            version=1,
        )
        tables.action_items[item_id] = stored
        return fresh(stored)

    def get_action_item(self, project_id: int, item_id: int) -> ActionItem | None:
        found = self.tables.action_items.get(item_id)
        return None if found is None or found.project_id != project_id else fresh(found)

    def incident_action_items(self, project_id: int, incident_id: int) -> list[ActionItem]:
        found = [
            i
            for i in self.tables.action_items.values()
            if i.project_id == project_id and i.incident_id == incident_id
        ]
        return [fresh(i) for i in sorted(found, key=lambda i: i.id)]

    def list_action_items(
        self,
        project_id: int,
        *,
        limit: int,
        after: ItemCursor | None,
        status: str | None = None,
        due_before: date | None = None,
    ) -> list[ActionItem]:
        found = [
            i
            for i in self.tables.action_items.values()
            if i.project_id == project_id
            and (after is None or _due_order(i) > (after.due_on, after.id))
            and (status is None or i.status == status)
            and (due_before is None or i.due_on < due_before)
        ]
        return [fresh(i) for i in sorted(found, key=_due_order)[:limit]]

    def update_action_item(self, item: ActionItem, at: datetime) -> ActionItem | None:
        tables = self.write()
        stored = tables.action_items.get(item.id)
        if stored is None or stored.project_id != item.project_id or stored.version != item.version:
            return None
        written = replace(
            stored,
            title=item.title,
            owner=item.owner,
            due_on=item.due_on,
            status=item.status,
            done_by=item.done_by,
            done_at=item.done_at,
            overdue_at=item.overdue_at,
            updated_at=at,
            version=stored.version + 1,
        )
        tables.action_items[item.id] = written
        return fresh(written)

    def items_to_escalate(self, due_before: date, limit: int) -> list[ActionItem]:
        found = [
            i
            for i in self.tables.action_items.values()
            if i.status == "open" and i.overdue_at is None and i.due_on < due_before
        ]
        return [fresh(i) for i in sorted(found, key=_due_order)[:limit]]
