"""SQL queries for guarded rollouts: templates, release plans and webhooks (the SDK event totals
metric gates read are in :mod:`.event_totals`, the incidents rollbacks open in
:mod:`.incidents`).

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
    NewPlan,
    PlanUpdate,
    RolloutTemplate,
    StoredPlan,
)
from fader_server.storage.sql.tables import (
    release_plans,
    rollout_templates,
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
