"""SQL queries for incidents and their action items (a mixin of
:class:`~fader_server.storage.sql.repository.SqlTransaction`).

Updates are compare-and-swap: ``UPDATE ... WHERE id = :id AND version = :read`` changes one row
or none. On PostgreSQL a second writer of the same row waits for the first one's commit, then
re-checks the condition against the committed row (READ COMMITTED) and changes nothing; on
SQLite writers are serialised. Either way exactly one of two concurrent writers wins, which is
what makes an overdue item's escalation happen once across replicas.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from fader_server.storage.ports import Incident
from fader_server.storage.ports.incidents import (
    ActionItem,
    ItemCursor,
    NewActionItem,
    NewIncident,
)
from fader_server.storage.sql.tables import incident_action_items, rollout_incidents

_ITEMS = incident_action_items.c
_INCIDENTS = rollout_incidents.c


def _utc(value: datetime | None) -> Any:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        project_id=row.project_id,
        plan_id=row.plan_id,
        opened_at=_utc(row.opened_at),
        stage=row.stage,
        stage_name=row.stage_name,
        metric=row.metric,
        evidence=row.evidence,
        timeline=row.timeline,
        title=row.title,
        severity=row.severity,
        flag=row.flag,
        environment=row.environment,
        description=row.description,
        opened_by=row.opened_by,
        state=row.state,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=_utc(row.acknowledged_at),
        resolved_by=row.resolved_by,
        resolved_at=_utc(row.resolved_at),
        resolution=row.resolution,
        summary=row.summary,
        version=row.version,
        updated_at=_utc(row.updated_at),
    )


def _item(row: Any) -> ActionItem:
    return ActionItem(
        id=row.id,
        project_id=row.project_id,
        incident_id=row.incident_id,
        title=row.title,
        owner=row.owner,
        due_on=row.due_on,
        status=row.status,
        done_by=row.done_by,
        done_at=_utc(row.done_at),
        overdue_at=_utc(row.overdue_at),
        created_by=row.created_by,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        version=row.version,
    )


class IncidentQueries:
    connection: sa.Connection

    # --------------------------------------------------------------- incidents
    def insert_incident(self, incident: NewIncident, at: datetime) -> Incident:
        row = self.connection.execute(
            sa.insert(rollout_incidents)
            .values(
                project_id=incident.project_id,
                plan_id=incident.plan_id,
                opened_at=at,
                stage=incident.stage,
                stage_name=incident.stage_name,
                metric=incident.metric,
                evidence=list(incident.evidence),
                timeline=list(incident.timeline),
                title=incident.title,
                severity=incident.severity,
                flag=incident.flag,
                environment=incident.environment,
                description=incident.description,
                opened_by=incident.opened_by,
                state="open",
                summary="",
                version=1,
                updated_at=at,
            )
            .returning(rollout_incidents)
        ).one()
        return _incident(row)

    def get_incident(self, project_id: int, incident_id: int) -> Incident | None:
        row = self.connection.execute(
            sa.select(rollout_incidents).where(
                _INCIDENTS.project_id == project_id, _INCIDENTS.id == incident_id
            )
        ).first()
        return None if row is None else _incident(row)

    def list_incidents(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        plan_id: int | None = None,
        state: str | None = None,
    ) -> list[Incident]:
        query = (
            sa.select(rollout_incidents)
            .where(_INCIDENTS.project_id == project_id)
            .order_by(_INCIDENTS.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(_INCIDENTS.id < before_id)
        if plan_id is not None:
            query = query.where(_INCIDENTS.plan_id == plan_id)
        if state is not None:
            query = query.where(_INCIDENTS.state == state)
        return [_incident(r) for r in self.connection.execute(query)]

    def update_incident(self, incident: Incident, at: datetime) -> Incident | None:
        row = self.connection.execute(
            sa.update(rollout_incidents)
            .where(
                _INCIDENTS.id == incident.id,
                _INCIDENTS.project_id == incident.project_id,
                _INCIDENTS.version == incident.version,
            )
            .values(
                state=incident.state,
                acknowledged_by=incident.acknowledged_by,
                acknowledged_at=incident.acknowledged_at,
                resolved_by=incident.resolved_by,
                resolved_at=incident.resolved_at,
                resolution=incident.resolution,
                summary=incident.summary,
                version=incident.version + 1,
                updated_at=at,
            )
            .returning(rollout_incidents)
        ).first()
        return None if row is None else _incident(row)

    # ------------------------------------------------------------ action items
    def insert_action_item(self, item: NewActionItem, at: datetime) -> ActionItem:
        row = self.connection.execute(
            sa.insert(incident_action_items)
            .values(
                project_id=item.project_id,
                incident_id=item.incident_id,
                title=item.title,
                owner=item.owner,
                due_on=item.due_on,
                status="open",
                created_by=item.created_by,
                created_at=at,
                updated_at=at,
                version=1,
            )
            .returning(incident_action_items)
        ).one()
        return _item(row)

    def get_action_item(self, project_id: int, item_id: int) -> ActionItem | None:
        row = self.connection.execute(
            sa.select(incident_action_items).where(
                _ITEMS.project_id == project_id, _ITEMS.id == item_id
            )
        ).first()
        return None if row is None else _item(row)

    def incident_action_items(self, project_id: int, incident_id: int) -> list[ActionItem]:
        rows = self.connection.execute(
            sa.select(incident_action_items)
            .where(_ITEMS.project_id == project_id, _ITEMS.incident_id == incident_id)
            .order_by(_ITEMS.id)
        )
        return [_item(r) for r in rows]

    def list_action_items(
        self,
        project_id: int,
        *,
        limit: int,
        after: ItemCursor | None,
        status: str | None = None,
        due_before: date | None = None,
    ) -> list[ActionItem]:
        query = (
            sa.select(incident_action_items)
            .where(_ITEMS.project_id == project_id)
            .order_by(_ITEMS.due_on, _ITEMS.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                sa.or_(
                    _ITEMS.due_on > after.due_on,
                    sa.and_(_ITEMS.due_on == after.due_on, _ITEMS.id > after.id),
                )
            )
        if status is not None:
            query = query.where(_ITEMS.status == status)
        if due_before is not None:
            query = query.where(_ITEMS.due_on < due_before)
        return [_item(r) for r in self.connection.execute(query)]

    def update_action_item(self, item: ActionItem, at: datetime) -> ActionItem | None:
        row = self.connection.execute(
            sa.update(incident_action_items)
            .where(
                _ITEMS.id == item.id,
                _ITEMS.project_id == item.project_id,
                _ITEMS.version == item.version,
            )
            .values(
                title=item.title,
                owner=item.owner,
                due_on=item.due_on,
                status=item.status,
                done_by=item.done_by,
                done_at=item.done_at,
                overdue_at=item.overdue_at,
                updated_at=at,
                version=item.version + 1,
            )
            .returning(incident_action_items)
        ).first()
        return None if row is None else _item(row)

    def items_to_escalate(self, due_before: date, limit: int) -> list[ActionItem]:
        rows = self.connection.execute(
            sa.select(incident_action_items)
            .where(
                _ITEMS.status == "open",
                _ITEMS.overdue_at.is_(None),
                _ITEMS.due_on < due_before,
            )
            .order_by(_ITEMS.due_on, _ITEMS.id)
            .limit(limit)
        )
        return [_item(r) for r in rows]
