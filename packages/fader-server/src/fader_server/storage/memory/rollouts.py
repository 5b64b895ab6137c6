"""Rollout templates and release plans, in memory (the SQL counterpart is
:mod:`fader_server.storage.sql.rollouts`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.memory.tables import PlanRow
from fader_server.storage.ports import (
    JSON,
    NewPlan,
    PlanUpdate,
    RolloutTemplate,
    StoredPlan,
)

ACTIVE_STATUSES = ("running", "paused", "awaiting_approval")


class RolloutQueries(TransactionState):
    # --------------------------------------------------------------- templates
    def insert_template(
        self, project_id: int, key: str, name: str, data: JSON, created_by: str, at: datetime
    ) -> RolloutTemplate:
        tables = self.write()
        if self.get_template(project_id, key) is not None:
            raise AlreadyExistsError(f"rollout template '{key}' already exists")
        template_id = tables.next_id("templates")
        template = RolloutTemplate(template_id, project_id, key, name, fresh(data), created_by, at)
        tables.templates[template_id] = template
        return fresh(template)

    def get_template(self, project_id: int, key: str) -> RolloutTemplate | None:
        found = next(
            (
                t
                for t in self.tables.templates.values()
                if t.project_id == project_id and t.key == key
            ),
            None,
        )
        return None if found is None else fresh(found)

    def list_templates(self, project_id: int) -> list[RolloutTemplate]:
        found = [t for t in self.tables.templates.values() if t.project_id == project_id]
        return [fresh(t) for t in sorted(found, key=lambda t: t.key)]

    def delete_template(self, project_id: int, key: str) -> bool:
        tables = self.write()
        found = self.get_template(project_id, key)
        if found is None:
            return False
        del tables.templates[found.id]
        return True

    # ------------------------------------------------------------------- plans
    def _unfinished(self, project_id: int, environment: str, flag: str, other_than: int) -> bool:
        return any(
            row.active
            and row.plan.id != other_than
            and (row.plan.project_id, row.plan.environment, row.plan.flag)
            == (project_id, environment, flag)
            for row in self.tables.plans.values()
        )

    def insert_plan(self, plan: NewPlan, at: datetime) -> StoredPlan:
        tables = self.write()
        if self._unfinished(plan.project_id, plan.environment, plan.flag, other_than=0):
            raise AlreadyExistsError(
                f"flag '{plan.flag}' already has an unfinished release plan in "
                f"'{plan.environment}'; finish or abort it first"
            )
        plan_id = tables.next_id("plans")
        stored = StoredPlan(
            id=plan_id,
            project_id=plan.project_id,
            flag=plan.flag,
            environment=plan.environment,
            template=plan.template,
            plan=fresh(plan.plan),
            state=fresh(plan.state),
            status=plan.status,
            base_config=None,
            last_evaluation=None,
            incident_id=None,
            version=1,
            created_by=plan.created_by,
            created_at=at,
            updated_at=at,
        )
        tables.plans[plan_id] = PlanRow(stored, active=True)
        return fresh(stored)

    def get_plan(self, project_id: int, plan_id: int) -> StoredPlan | None:
        row = self.tables.plans.get(plan_id)
        return None if row is None or row.plan.project_id != project_id else fresh(row.plan)

    def list_plans(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[StoredPlan]:
        found = [
            row.plan
            for row in self.tables.plans.values()
            if row.plan.project_id == project_id
            and (before_id is None or row.plan.id < before_id)
            and (flag is None or row.plan.flag == flag)
            and (status is None or row.plan.status == status)
        ]
        return [fresh(p) for p in sorted(found, key=lambda p: -p.id)[:limit]]

    def active_plans(self) -> list[StoredPlan]:
        found = [r.plan for r in self.tables.plans.values() if r.plan.status in ACTIVE_STATUSES]
        return [fresh(p) for p in sorted(found, key=lambda p: p.id)]

    def lock_plan(self, plan_id: int, *, wait: bool) -> StoredPlan | None:
        """Write transactions run one at a time, so the plan is never held by another."""
        row = self.tables.plans.get(plan_id)
        return None if row is None else fresh(row.plan)

    def update_plan(self, plan: StoredPlan, update: PlanUpdate, at: datetime) -> StoredPlan | None:
        tables = self.write()
        row = tables.plans.get(plan.id)
        if row is None or row.plan.version != plan.version:
            return None
        stored = row.plan
        if update.active and self._unfinished(
            stored.project_id, stored.environment, stored.flag, other_than=stored.id
        ):
            raise self.conflict()
        written = replace(
            stored,
            state=fresh(update.state),
            status=update.status,
            version=stored.version + 1,
            updated_at=at,
            last_evaluation=fresh(update.last_evaluation)
            if update.last_evaluation is not None
            else stored.last_evaluation,
            base_config=fresh(update.base_config)
            if update.base_config is not None
            else stored.base_config,
            incident_id=update.incident_id
            if update.incident_id is not None
            else stored.incident_id,
        )
        tables.plans[plan.id] = PlanRow(written, active=update.active)
        return fresh(written)
