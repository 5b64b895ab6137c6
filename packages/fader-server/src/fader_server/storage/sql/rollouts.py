"""SQL queries for guarded rollouts: templates, release plans, incidents and webhooks (the SDK
event totals metric gates read are in :mod:`.event_totals`).

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`.
:meth:`RolloutQueries.lock_plan` is how replicas agree on who moves a plan. On PostgreSQL it
  is ``SELECT ... FOR UPDATE`` (``SKIP LOCKED`` for the scheduler, so a replica never waits for
  another one's tick); on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and is
  serialised already. Either way :meth:`RolloutQueries.update_plan` is a compare-and-swap on
  the plan's version, so a transition computed from a stale read can never be written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from fader_server.errors import AlreadyExistsError
from fader_server.storage.ports import (
    JSON,
    Incident,
    NewPlan,
    PlanUpdate,
    RolloutTemplate,
    StoredPlan,
    Webhook,
)
from fader_server.storage.sql.tables import (
    release_plans,
    rollout_incidents,
    rollout_templates,
    rollout_webhooks,
)

ACTIVE_STATUSES = ("running", "paused", "awaiting_approval")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _template(row: Any) -> RolloutTemplate:
    return RolloutTemplate(
        id=row.id,
        project_id=row.project_id,
        key=row.key,
        name=row.name,
        data=row.data,
        created_by=row.created_by,
        created_at=_utc(row.created_at),
    )


def _plan(row: Any) -> StoredPlan:
    return StoredPlan(
        id=row.id,
        project_id=row.project_id,
        flag=row.flag,
        environment=row.environment,
        template=row.template,
        plan=row.plan,
        state=row.state,
        status=row.status,
        base_config=row.base_config,
        last_evaluation=row.last_evaluation,
        incident_id=row.incident_id,
        version=row.version,
        created_by=row.created_by,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


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
    )


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        project_id=row.project_id,
        url=row.url,
        description=row.description,
        secret=row.secret,
        created_by=row.created_by,
        created_at=_utc(row.created_at),
    )


class RolloutQueries:
    connection: sa.Connection

    # --------------------------------------------------------------- templates
    def insert_template(
        self, project_id: int, key: str, name: str, data: JSON, created_by: str, at: datetime
    ) -> RolloutTemplate:
        try:
            with self.connection.begin_nested():
                row = self.connection.execute(
                    sa.insert(rollout_templates)
                    .values(
                        project_id=project_id,
                        key=key,
                        name=name,
                        data=data,
                        created_by=created_by,
                        created_at=at,
                    )
                    .returning(rollout_templates)
                ).one()
        except sa.exc.IntegrityError:
            raise AlreadyExistsError(f"rollout template '{key}' already exists") from None
        return _template(row)

    def get_template(self, project_id: int, key: str) -> RolloutTemplate | None:
        row = self.connection.execute(
            sa.select(rollout_templates).where(
                rollout_templates.c.project_id == project_id, rollout_templates.c.key == key
            )
        ).first()
        return None if row is None else _template(row)

    def list_templates(self, project_id: int) -> list[RolloutTemplate]:
        rows = self.connection.execute(
            sa.select(rollout_templates)
            .where(rollout_templates.c.project_id == project_id)
            .order_by(rollout_templates.c.key)
        )
        return [_template(r) for r in rows]

    def delete_template(self, project_id: int, key: str) -> bool:
        result = self.connection.execute(
            sa.delete(rollout_templates).where(
                rollout_templates.c.project_id == project_id, rollout_templates.c.key == key
            )
        )
        return bool(result.rowcount)

    # ------------------------------------------------------------------- plans
    def insert_plan(self, plan: NewPlan, at: datetime) -> StoredPlan:
        try:
            with self.connection.begin_nested():
                row = self.connection.execute(
                    sa.insert(release_plans)
                    .values(
                        project_id=plan.project_id,
                        flag=plan.flag,
                        environment=plan.environment,
                        template=plan.template,
                        plan=plan.plan,
                        state=plan.state,
                        status=plan.status,
                        active=True,
                        version=1,
                        created_by=plan.created_by,
                        created_at=at,
                        updated_at=at,
                    )
                    .returning(release_plans)
                ).one()
        except sa.exc.IntegrityError:
            raise AlreadyExistsError(
                f"flag '{plan.flag}' already has an unfinished release plan in "
                f"'{plan.environment}'; finish or abort it first"
            ) from None
        return _plan(row)

    def get_plan(self, project_id: int, plan_id: int) -> StoredPlan | None:
        row = self.connection.execute(
            sa.select(release_plans).where(
                release_plans.c.project_id == project_id, release_plans.c.id == plan_id
            )
        ).first()
        return None if row is None else _plan(row)

    def list_plans(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[StoredPlan]:
        query = (
            sa.select(release_plans)
            .where(release_plans.c.project_id == project_id)
            .order_by(release_plans.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(release_plans.c.id < before_id)
        if flag is not None:
            query = query.where(release_plans.c.flag == flag)
        if status is not None:
            query = query.where(release_plans.c.status == status)
        return [_plan(r) for r in self.connection.execute(query)]

    def active_plans(self) -> list[StoredPlan]:
        rows = self.connection.execute(
            sa.select(release_plans)
            .where(release_plans.c.status.in_(ACTIVE_STATUSES))
            .order_by(release_plans.c.id)
        )
        return [_plan(r) for r in rows]

    def lock_plan(self, plan_id: int, *, wait: bool) -> StoredPlan | None:
        row = self.connection.execute(
            sa.select(release_plans)
            .where(release_plans.c.id == plan_id)
            .with_for_update(skip_locked=not wait)
        ).first()
        return None if row is None else _plan(row)

    def update_plan(self, plan: StoredPlan, update: PlanUpdate, at: datetime) -> StoredPlan | None:
        values: dict[str, Any] = {
            "state": update.state,
            "status": update.status,
            "active": True if update.active else None,
            "version": plan.version + 1,
            "updated_at": at,
        }
        if update.last_evaluation is not None:
            values["last_evaluation"] = update.last_evaluation
        if update.base_config is not None:
            values["base_config"] = update.base_config
        if update.incident_id is not None:
            values["incident_id"] = update.incident_id
        row = self.connection.execute(
            sa.update(release_plans)
            .where(release_plans.c.id == plan.id, release_plans.c.version == plan.version)
            .values(**values)
            .returning(release_plans)
        ).first()
        return None if row is None else _plan(row)

    # --------------------------------------------------------------- incidents
    def insert_incident(
        self,
        project_id: int,
        plan_id: int,
        opened_at: datetime,
        stage: int,
        stage_name: str,
        metric: str,
        evidence: list[JSON],
        timeline: list[JSON],
    ) -> Incident:
        row = self.connection.execute(
            sa.insert(rollout_incidents)
            .values(
                project_id=project_id,
                plan_id=plan_id,
                opened_at=opened_at,
                stage=stage,
                stage_name=stage_name,
                metric=metric,
                evidence=evidence,
                timeline=timeline,
            )
            .returning(rollout_incidents)
        ).one()
        return _incident(row)

    def get_incident(self, project_id: int, incident_id: int) -> Incident | None:
        row = self.connection.execute(
            sa.select(rollout_incidents).where(
                rollout_incidents.c.project_id == project_id,
                rollout_incidents.c.id == incident_id,
            )
        ).first()
        return None if row is None else _incident(row)

    def list_incidents(
        self, project_id: int, *, limit: int, before_id: int | None, plan_id: int | None = None
    ) -> list[Incident]:
        query = (
            sa.select(rollout_incidents)
            .where(rollout_incidents.c.project_id == project_id)
            .order_by(rollout_incidents.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(rollout_incidents.c.id < before_id)
        if plan_id is not None:
            query = query.where(rollout_incidents.c.plan_id == plan_id)
        return [_incident(r) for r in self.connection.execute(query)]

    # ---------------------------------------------------------------- webhooks
    def insert_webhook(
        self,
        project_id: int,
        url: str,
        description: str,
        secret: str,
        created_by: str,
        at: datetime,
    ) -> Webhook:
        try:
            with self.connection.begin_nested():
                row = self.connection.execute(
                    sa.insert(rollout_webhooks)
                    .values(
                        project_id=project_id,
                        url=url,
                        description=description,
                        secret=secret,
                        created_by=created_by,
                        created_at=at,
                    )
                    .returning(rollout_webhooks)
                ).one()
        except sa.exc.IntegrityError:
            raise AlreadyExistsError("this URL is already a webhook of the project") from None
        return _webhook(row)

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        rows = self.connection.execute(
            sa.select(rollout_webhooks)
            .where(rollout_webhooks.c.project_id == project_id)
            .order_by(rollout_webhooks.c.id)
        )
        return [_webhook(r) for r in rows]

    def delete_webhook(self, project_id: int, webhook_id: int) -> bool:
        result = self.connection.execute(
            sa.delete(rollout_webhooks).where(
                rollout_webhooks.c.project_id == project_id, rollout_webhooks.c.id == webhook_id
            )
        )
        return bool(result.rowcount)
