"""Incidents get a lifecycle and a post-mortem (docs/incidents.md): ``rollout_incidents`` gains
a title, a severity, the flag and environment, a description, who opened it, its state (open,
acknowledged, resolved) with who moved it and when, the resolution, the post-mortem summary
and a version (compare-and-swap); the rollout columns become optional, since people open
incidents by hand too. ``incident_action_items`` holds the post-mortems' action items.

Incidents recorded by rollbacks before this revision become open incidents titled after their
plan's flag and environment, opened by ``rollout:<plan id>`` (the actor the audit log already
shows for the rollback), severity ``major``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_FILLED: dict[str, sa.types.TypeEngine[Any]] = {
    "title": sa.String(200),
    "severity": sa.String(20),
    "description": sa.Text(),
    "opened_by": sa.String(200),
    "state": sa.String(20),
    "summary": sa.Text(),
    "version": sa.Integer(),
    "updated_at": _TS,
}
"""Columns every row needs: added nullable, filled, then made NOT NULL."""


def upgrade() -> None:
    with op.batch_alter_table("rollout_incidents") as batch:
        for name, kind in _FILLED.items():
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column("flag", sa.String(128), nullable=True))
        batch.add_column(sa.Column("environment", sa.String(128), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", _TS, nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("resolved_at", _TS, nullable=True))
        batch.add_column(sa.Column("resolution", sa.Text(), nullable=True))
    op.execute(
        "UPDATE rollout_incidents SET "
        "flag = (SELECT p.flag FROM release_plans p WHERE p.id = rollout_incidents.plan_id), "
        "environment = "
        "(SELECT p.environment FROM release_plans p WHERE p.id = rollout_incidents.plan_id), "
        "severity = 'major', description = '', state = 'open', summary = '', version = 1, "
        "updated_at = opened_at, opened_by = 'rollout:' || CAST(plan_id AS VARCHAR(20))"
    )
    op.execute(
        "UPDATE rollout_incidents SET title = 'Automatic rollback of ' || "
        "COALESCE(flag, 'a flag') || ' in ' || COALESCE(environment, 'an environment')"
    )
    with op.batch_alter_table("rollout_incidents") as batch:
        for name, kind in _FILLED.items():
            batch.alter_column(name, existing_type=kind, nullable=False)
        batch.alter_column("plan_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("stage", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("stage_name", existing_type=sa.String(200), nullable=True)
        batch.alter_column("metric", existing_type=sa.Text(), nullable=True)
        batch.create_index("ix_rollout_incidents_state", ["project_id", "state", "id"])
    op.create_table(
        "incident_action_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("rollout_incidents.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("done_by", sa.String(200), nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.Column("overdue_at", _TS, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_incident_action_items_incident", "incident_action_items", ["incident_id", "id"]
    )
    op.create_index(
        "ix_incident_action_items_due",
        "incident_action_items",
        ["project_id", "status", "due_on", "id"],
    )
    op.create_index(
        "ix_incident_action_items_escalation",
        "incident_action_items",
        ["status", "overdue_at", "due_on"],
    )


def downgrade() -> None:
    """Back to rollback records only: action items and incidents opened by hand go (a
    rollback's incident keeps its stage, metric, evidence and timeline)."""
    op.drop_table("incident_action_items")
    op.execute("DELETE FROM rollout_incidents WHERE plan_id IS NULL")
    with op.batch_alter_table("rollout_incidents") as batch:
        batch.drop_index("ix_rollout_incidents_state")
        batch.alter_column("plan_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("stage", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("stage_name", existing_type=sa.String(200), nullable=False)
        batch.alter_column("metric", existing_type=sa.Text(), nullable=False)
        for name in (
            *_FILLED,
            "flag",
            "environment",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
            "resolution",
        ):
            batch.drop_column(name)
