"""SQL queries for delivery: environment snapshot revisions and SDK events.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`. Revisions are bumped
with one upsert per environment, in sorted order so two transactions touching the same
environments always lock them in the same order (no deadlock on PostgreSQL). On PostgreSQL each
change is also announced with ``pg_notify``, which the database delivers to listening replicas
only if and when the transaction commits: a rolled-back write never announces anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fader_server.storage.ports import EnvironmentChange, Project, SdkEvent
from fader_server.storage.sql.tables import environment_revisions, sdk_events

CHANGE_CHANNEL = "fader_changes"


def encode_change(change: EnvironmentChange) -> str:
    """The NOTIFY payload (well under PostgreSQL's 8,000-byte limit)."""
    return json.dumps(
        {
            "p": change.project_id,
            "k": change.project_key,
            "e": change.environment,
            "r": change.revision,
        },
        separators=(",", ":"),
    )


def decode_change(payload: str) -> EnvironmentChange:
    data = json.loads(payload)
    return EnvironmentChange(int(data["p"]), str(data["k"]), str(data["e"]), int(data["r"]))


class DeliveryQueries:
    connection: sa.Connection
    changes: list[EnvironmentChange]

    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        dialect = self.connection.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        bumped: list[EnvironmentChange] = []
        for environment in sorted(set(environments)):
            statement = insert(environment_revisions).values(
                project_id=project.id, environment=environment, revision=1, changed_at=at
            )
            statement = statement.on_conflict_do_update(
                index_elements=["project_id", "environment"],
                set_={
                    "revision": environment_revisions.c.revision + 1,
                    "changed_at": at,
                },
            ).returning(environment_revisions.c.revision)
            revision = self.connection.execute(statement).scalar_one()
            change = EnvironmentChange(project.id, project.key, environment, revision)
            bumped.append(change)
            if dialect == "postgresql":
                self.connection.execute(
                    sa.select(sa.func.pg_notify(CHANGE_CHANNEL, encode_change(change)))
                )
        self.changes.extend(bumped)
        return bumped

    def revision(self, project_id: int, environment: str) -> int:
        found = self.connection.execute(
            sa.select(environment_revisions.c.revision).where(
                environment_revisions.c.project_id == project_id,
                environment_revisions.c.environment == environment,
            )
        ).scalar_one_or_none()
        return found or 0

    def insert_sdk_events(
        self, project_id: int, environment: str, events: Sequence[SdkEvent], at: datetime
    ) -> None:
        if not events:
            return
        self.connection.execute(
            sdk_events.insert(),
            [
                {
                    "project_id": project_id,
                    "environment": environment,
                    "kind": e.kind,
                    "flag": e.flag,
                    "variant": e.variant,
                    "reason": e.reason,
                    "name": e.name,
                    "value": e.value,
                    "targeting_key": e.targeting_key,
                    "occurred_at": e.occurred_at,
                    "received_at": at,
                }
                for e in events
            ],
        )
