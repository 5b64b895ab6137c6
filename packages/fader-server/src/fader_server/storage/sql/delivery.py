"""SQL queries for delivery: environment snapshot revisions and SDK key checks.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`. Revisions are bumped
with one upsert per environment, in sorted order so two transactions touching the same
environments always lock them in the same order (no deadlock on PostgreSQL). On PostgreSQL each
change is also announced with ``pg_notify``, which the database delivers to listening replicas
only if and when the transaction commits: a rolled-back write never announces anything. On
SQLite the same announcements are rows written in the transaction (:meth:`_announce`), for the
other workers of ``fader serve --workers N``.

Revoked tokens are announced the same way on a channel of their own (:data:`REVOKED_CHANNEL`),
so that every replica ends the streams a revoked key holds open at once; a replica of an older
release, which does not listen on it, is not confused by payloads it cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fader_server.storage.ports import (
    PROJECT_SCOPE,
    EnvironmentChange,
    Project,
    ResourceType,
    TokenKind,
)
from fader_server.storage.sql.tables import (
    announcements,
    environment_revisions,
    projects,
    resources,
    tokens,
)

CHANGE_CHANNEL = "fader_changes"
REVOKED_CHANNEL = "fader_revoked_tokens"
"""Payload: one revoked token's id, in decimal."""
ANNOUNCEMENTS_KEPT = 10_000
"""SQLite announcements kept (about a megabyte): far more than the other workers' watches, which
read them every few tens of milliseconds, ever fall behind."""
_IDS_PER_QUERY = 500
"""Token ids per ``IN (...)`` list, well under SQLite's limit on bound parameters."""


_REVISION = sa.select(environment_revisions.c.revision).where(
    environment_revisions.c.project_id == sa.bindparam("project_id"),
    environment_revisions.c.environment == sa.bindparam("environment"),
)
"""Built once: snapshot freshness checks and every configuration write read it."""


def _bump_and_notify_statement() -> sa.Select[Any]:
    """One environment's revision bumped (1 when new) and announced with ``pg_notify``, whose
    payload is bound as its `head` (everything up to the revision) followed by the revision
    the upsert returned and the closing brace."""
    first = postgresql.insert(environment_revisions).values(
        project_id=sa.bindparam("project_id"),
        environment=sa.bindparam("environment"),
        revision=1,
        changed_at=sa.bindparam("changed_at"),
    )
    bumped = (
        first.on_conflict_do_update(
            index_elements=["project_id", "environment"],
            set_={
                "revision": environment_revisions.c.revision + 1,
                "changed_at": first.excluded.changed_at,
            },
        )
        .returning(environment_revisions.c.revision)
        .cte("bumped")
    )
    payload = sa.bindparam("head", type_=sa.Text) + sa.cast(bumped.c.revision, sa.Text) + "}"
    return sa.select(
        bumped.c.revision, sa.func.pg_notify(sa.bindparam("channel", type_=sa.Text), payload)
    )


_BUMP_AND_NOTIFY = _bump_and_notify_statement()


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
    committed: list[Callable[[], None]]
    revoked_tokens: tuple[int, ...] = ()
    """Ids announced by :meth:`announce_revoked`, for the store's listeners after the commit."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    def announce_revoked(self, token_ids: Sequence[int]) -> None:
        self.revoked_tokens = (*self.revoked_tokens, *token_ids)
        for token_id in token_ids:
            self._announce(REVOKED_CHANNEL, str(int(token_id)))

    def _announce(self, channel: str, payload: str) -> None:
        """Tell the other server processes, when (and only if) this transaction commits:
        PostgreSQL with ``pg_notify``; SQLite with a row of :data:`.tables.announcements`,
        which the other workers' watches read (:mod:`.sqlite_watch`). Rows older than the
        newest :data:`ANNOUNCEMENTS_KEPT` are deleted here, one by one as new ones come: a
        watch that fell further behind finds a gap and resyncs everything instead."""
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(sa.select(sa.func.pg_notify(channel, payload)))
            return
        added = self.connection.execute(
            sa.insert(announcements).values(channel=channel, payload=payload)
        ).inserted_primary_key
        assert added is not None
        self.connection.execute(
            sa.delete(announcements).where(announcements.c.id <= added[0] - ANNOUNCEMENTS_KEPT)
        )

    def usable_keys(self, token_ids: Sequence[int], at: datetime) -> set[int]:
        """Dates are compared here rather than in SQL: SQLite keeps them as text, and a
        comparison there would depend on how each value was written."""
        t = tokens.c
        env = resources.alias("env")
        usable: set[int] = set()
        wanted = sorted(set(token_ids))
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            rows = self.connection.execute(
                sa.select(t.id, t.expires_at)
                .join(projects, projects.c.id == t.project_id)
                .join(
                    env,
                    sa.and_(
                        env.c.project_id == t.project_id,
                        env.c.type == ResourceType.ENVIRONMENT.value,
                        env.c.scope == PROJECT_SCOPE,
                        env.c.key == t.environment_key,
                    ),
                )
                .where(
                    t.id.in_(wanted[start : start + _IDS_PER_QUERY]),
                    t.kind.in_([TokenKind.SERVER.value, TokenKind.CLIENT.value]),
                    t.revoked_at.is_(None),
                    env.c.deleted.is_(False),
                )
            )
            for row in rows:
                expires = row.expires_at
                if expires is not None and expires.tzinfo is None:
                    expires = expires.replace(tzinfo=UTC)
                if expires is None or expires > at:
                    usable.add(row.id)
        return usable

    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        dialect = self.connection.dialect.name
        if dialect == "postgresql":
            return self._bump_and_notify(project, environments, at)
        bumped: list[EnvironmentChange] = []
        for environment in sorted(set(environments)):
            first = sqlite.insert(environment_revisions).values(
                project_id=project.id, environment=environment, revision=1, changed_at=at
            )
            bump = first.on_conflict_do_update(
                index_elements=["project_id", "environment"],
                set_={
                    "revision": environment_revisions.c.revision + 1,
                    "changed_at": at,
                },
            ).returning(environment_revisions.c.revision)
            revision = self.connection.execute(bump).scalar_one()
            change = EnvironmentChange(project.id, project.key, environment, revision)
            bumped.append(change)
            self._announce(CHANGE_CHANNEL, encode_change(change))
        self.changes.extend(bumped)
        return bumped

    def _bump_and_notify(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        """PostgreSQL: each environment's revision bumped and announced in one statement
        (:data:`_BUMP_AND_NOTIFY`), a round trip per environment instead of two. The payload
        is :func:`encode_change`'s, byte for byte: everything but the revision is encoded here,
        and the revision, an integer and the last member, is appended by the statement."""
        bumped: list[EnvironmentChange] = []
        for environment in sorted(set(environments)):
            head = encode_change(EnvironmentChange(project.id, project.key, environment, 0))
            row = self.connection.execute(
                _BUMP_AND_NOTIFY,
                {
                    "project_id": project.id,
                    "environment": environment,
                    "changed_at": at,
                    "channel": CHANGE_CHANNEL,
                    "head": head.removesuffix("0}"),
                },
            ).one()
            bumped.append(EnvironmentChange(project.id, project.key, environment, row.revision))
        self.changes.extend(bumped)
        return bumped

    def revision(self, project_id: int, environment: str) -> int:
        found = self.connection.execute(
            _REVISION, {"project_id": project_id, "environment": environment}
        ).scalar_one_or_none()
        return found or 0
