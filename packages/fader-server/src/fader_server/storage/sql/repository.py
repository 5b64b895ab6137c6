"""SQL implementation of :class:`~fader_server.storage.ports.store.Transaction`.

One instance wraps one connection inside one transaction; the store commits or rolls back.
Only this module writes SQL, and it speaks SQLAlchemy Core so SQLite and PostgreSQL share it;
the dialect branches are full-text search (FTS5 vs tsvector), the insert that yields to a
concurrent one (``ON CONFLICT DO NOTHING``, one construct per dialect) and the project write
lock (a PostgreSQL advisory lock; SQLite's ``BEGIN IMMEDIATE`` already serialises writers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fader_server.storage.ports import (
    JSON,
    AuditEntry,
    EnvironmentChange,
    NewAuditEntry,
    Project,
    Resource,
    ResourceType,
    Version,
)
from fader_server.storage.sql.accounts import AccountQueries
from fader_server.storage.sql.change_requests import ChangeRequestQueries
from fader_server.storage.sql.delivery import DeliveryQueries
from fader_server.storage.sql.event_totals import EventTotalQueries
from fader_server.storage.sql.incidents import IncidentQueries
from fader_server.storage.sql.outbox import OutboxQueries
from fader_server.storage.sql.rollouts import RolloutQueries
from fader_server.storage.sql.sso import SsoQueries
from fader_server.storage.sql.tables import (
    audit_log,
    projects,
    resource_versions,
    resources,
)
from fader_server.storage.sql.usage_reads import UsageReadQueries
from fader_server.storage.sql.usage_rows import UsageRowQueries

PROJECT_LOCK_NAMESPACE = 0x46445250
"""First key of the project write lock, ``pg_advisory_xact_lock(namespace, project id)``:
"FDRP" in ASCII, so Fader's advisory locks never collide with another application's
one-key locks in the same database."""

LOCK_TIMEOUT = "10s"
"""How long a write waits for a project's lock (or any other lock) before the request fails
as retryable: SQLite's ``busy_timeout`` is the same 10 s."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _project(row: Any) -> Project:
    return Project(id=row.id, key=row.key, name=row.name, created_at=_utc(row.created_at))


def _resource(row: Any) -> Resource:
    return Resource(
        id=row.id,
        project_id=row.project_id,
        type=ResourceType(row.type),
        scope=row.scope,
        key=row.key,
        version=row.version,
        data=row.data,
        deleted=row.deleted,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


# The hottest reads as statements built once, with their values bound at execution:
# building ``sa.select(...).where(...)`` with literal values and computing its cache key cost
# more CPU than the query itself (a flag read: 4 reads, 1.5 ms → 0.8 ms on PostgreSQL).
_PROJECT_BY_KEY = sa.select(projects).where(projects.c.key == sa.bindparam("key"))
_RESOURCE = sa.select(resources).where(
    resources.c.project_id == sa.bindparam("project_id"),
    resources.c.type == sa.bindparam("type"),
    resources.c.scope == sa.bindparam("scope"),
    resources.c.key == sa.bindparam("key"),
)
_LIVE_RESOURCES = (
    sa.select(resources)
    .where(
        resources.c.project_id == sa.bindparam("project_id"),
        resources.c.type == sa.bindparam("type"),
        resources.c.scope == sa.bindparam("scope"),
        resources.c.deleted.is_(False),
    )
    .order_by(resources.c.key)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)

# The statements of every versioned write, likewise built once (building them with their values
# took about a tenth of a flag configuration write's CPU); values come as execution parameters.
_UPDATE_RESOURCE = (
    sa.update(resources)
    .where(
        resources.c.id == sa.bindparam("resource_id"),
        resources.c.version == sa.bindparam("expected_version"),
    )
    .returning(resources)
)
"""Compare-and-swap: the row is updated only while it is at `expected_version`."""
_INSERT_VERSION = sa.insert(resource_versions)
_INSERT_AUDIT = sa.insert(audit_log).returning(audit_log.c.id)


_NAMED: dict[int, sa.Select[Any]] = {}


def _resources_named(count: int) -> sa.Select[Any]:
    """The resources of one project named by `count` (type, scope, key) triples, bound as
    ``type0``, ``scope0``, ``key0``...: one statement per count, built on first use."""
    statement = _NAMED.get(count)
    if statement is None:
        c = resources.c
        statement = sa.select(resources).where(
            c.project_id == sa.bindparam("project_id"),
            sa.or_(
                *(
                    sa.and_(
                        c.type == sa.bindparam(f"type{n}"),
                        c.scope == sa.bindparam(f"scope{n}"),
                        c.key == sa.bindparam(f"key{n}"),
                    )
                    for n in range(count)
                )
            ),
        )
        _NAMED[count] = statement
    return statement


_WITH_PROJECT: dict[int, sa.Select[Any]] = {}
_PROJECT_LABELS = (
    projects.c.id.label("project_row_id"),
    projects.c.key.label("project_row_key"),
    projects.c.name.label("project_row_name"),
    projects.c.created_at.label("project_row_created_at"),
)


def _project_with_resources(count: int) -> sa.Select[Any]:
    """The project named ``project_key`` (its columns labelled ``project_row_*``) joined to its
    resources named as in :func:`_resources_named`: no row without the project, one row with
    empty resource columns when it has none of them. Built on first use per count."""
    statement = _WITH_PROJECT.get(count)
    if statement is None:
        c = resources.c
        named = sa.or_(
            *(
                sa.and_(
                    c.type == sa.bindparam(f"type{n}"),
                    c.scope == sa.bindparam(f"scope{n}"),
                    c.key == sa.bindparam(f"key{n}"),
                )
                for n in range(count)
            )
        )
        statement = (
            sa.select(*_PROJECT_LABELS, resources)
            .select_from(
                projects.outerjoin(resources, sa.and_(c.project_id == projects.c.id, named))
            )
            .where(projects.c.key == sa.bindparam("project_key"))
        )
        _WITH_PROJECT[count] = statement
    return statement


def _fts5_query(text: str) -> str:
    """Each word becomes a quoted prefix term, so user input can never be FTS5 syntax."""
    words = [w.replace('"', "") for w in text.split()]
    return " ".join(f'"{w}"*' for w in words if w)


class SqlTransaction(
    AccountQueries,
    DeliveryQueries,
    EventTotalQueries,
    IncidentQueries,
    OutboxQueries,
    RolloutQueries,
    SsoQueries,
    UsageReadQueries,
    UsageRowQueries,
    ChangeRequestQueries,
):
    """Repository methods bound to one open transaction."""

    def __init__(self, connection: sa.Connection, *, writable: bool) -> None:
        self.connection = connection
        self.writable = writable
        self.changes: list[EnvironmentChange] = []
        self.committed: list[Callable[[], None]] = []
        """Callbacks of :meth:`after_commit`, run by the store once the commit returned."""
        self._sqlite = connection.dialect.name == "sqlite"

    # ---------------------------------------------------------------- projects
    def get_project(self, key: str) -> Project | None:
        row = self.connection.execute(_PROJECT_BY_KEY, {"key": key}).first()
        return None if row is None else _project(row)

    def get_project_by_id(self, project_id: int) -> Project | None:
        row = self.connection.execute(
            sa.select(projects).where(projects.c.id == project_id)
        ).first()
        return None if row is None else _project(row)

    def list_projects(self, limit: int, after_key: str | None) -> list[Project]:
        query = sa.select(projects).order_by(projects.c.key).limit(limit)
        if after_key is not None:
            query = query.where(projects.c.key > after_key)
        return [_project(r) for r in self.connection.execute(query)]

    def insert_project(self, key: str, name: str, at: datetime) -> Project:
        result = self.connection.execute(
            sa.insert(projects).values(key=key, name=name, created_at=at).returning(projects)
        )
        return _project(result.one())

    def update_project(self, project_id: int, name: str) -> None:
        self.connection.execute(
            sa.update(projects).where(projects.c.id == project_id).values(name=name)
        )

    def lock_project(self, project_id: int) -> None:
        """A transaction-scoped advisory lock on PostgreSQL: released by the commit or the
        rollback itself (nothing to forget on an error path), held by the transaction rather
        than the session so PgBouncer's transaction pooling keeps it, and on no table row, so
        reads are never blocked. ``lock_timeout`` is set for this transaction only (the same as
        ``SET LOCAL``), so a stuck holder turns into a retryable error rather than a queue.
        On SQLite the transaction began with ``BEGIN IMMEDIATE`` and holds the database's
        single write lock already: there is nothing more to take."""
        if self._sqlite:
            return
        # Both in one round trip: without bound parameters psycopg sends the simple query
        # protocol, which runs the two statements in order (the timeout is in force for the
        # lock wait) and is never prepared. Every value is an integer or a constant of ours.
        self.connection.exec_driver_sql(
            f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; "
            f"SELECT pg_advisory_xact_lock({PROJECT_LOCK_NAMESPACE:d}, {int(project_id):d})"
        )

    # --------------------------------------------------------------- resources
    def get_resource(
        self, project_id: int, type: ResourceType, scope: str, key: str
    ) -> Resource | None:
        row = self.connection.execute(
            _RESOURCE, {"project_id": project_id, "type": type.value, "scope": scope, "key": key}
        ).first()
        return None if row is None else _resource(row)

    def get_resources(
        self, project_id: int, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> list[Resource | None]:
        values: dict[str, Any] = {"project_id": project_id}
        for n, (type, scope, key) in enumerate(wanted):
            values |= {f"type{n}": type.value, f"scope{n}": scope, f"key{n}": key}
        rows = self.connection.execute(_resources_named(len(wanted)), values)
        found = {(r.type, r.scope, r.key): _resource(r) for r in rows}
        return [found.get((type.value, scope, key)) for type, scope, key in wanted]

    def get_project_resources(
        self, project_key: str, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> tuple[Project | None, list[Resource | None]]:
        values: dict[str, Any] = {"project_key": project_key}
        for n, (type, scope, key) in enumerate(wanted):
            values |= {f"type{n}": type.value, f"scope{n}": scope, f"key{n}": key}
        rows = self.connection.execute(_project_with_resources(len(wanted)), values).all()
        if not rows:
            return None, [None] * len(wanted)
        first = rows[0]
        project = Project(
            id=first.project_row_id,
            key=first.project_row_key,
            name=first.project_row_name,
            created_at=_utc(first.project_row_created_at),
        )
        found = {(r.type, r.scope, r.key): _resource(r) for r in rows if r.id is not None}
        return project, [found.get((type.value, scope, key)) for type, scope, key in wanted]

    def list_resources(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        *,
        limit: int,
        after_key: str | None = None,
        query: str | None = None,
    ) -> list[Resource]:
        if after_key is None and not (query and query.strip()):
            values = {"project_id": project_id, "type": type.value, "scope": scope}
            rows = self.connection.execute(_LIVE_RESOURCES, {**values, "limit": limit})
            return [_resource(r) for r in rows]
        select = (
            sa.select(resources)
            .where(
                resources.c.project_id == project_id,
                resources.c.type == type.value,
                resources.c.scope == scope,
                resources.c.deleted.is_(False),
            )
            .order_by(resources.c.key)
            .limit(limit)
        )
        if after_key is not None:
            select = select.where(resources.c.key > after_key)
        if query and query.strip():
            if self._sqlite:
                match = sa.text(
                    "SELECT rowid FROM flag_search WHERE flag_search MATCH :q"
                ).bindparams(q=_fts5_query(query))
                select = select.where(resources.c.id.in_(match.columns(sa.column("rowid"))))
            else:
                select = select.where(
                    sa.func.to_tsvector("simple", resources.c.search_text).op("@@")(
                        sa.func.plainto_tsquery("simple", query)
                    )
                )
        return [_resource(r) for r in self.connection.execute(select)]

    def _index(self, resource_id: int, search_text: str, deleted: bool) -> None:
        if not self._sqlite:
            return  # PostgreSQL indexes the column itself.
        self.connection.execute(
            sa.text("DELETE FROM flag_search WHERE rowid = :id").bindparams(id=resource_id)
        )
        if search_text and not deleted:
            self.connection.execute(
                sa.text("INSERT INTO flag_search(rowid, search_text) VALUES (:id, :t)").bindparams(
                    id=resource_id, t=search_text
                )
            )

    def insert_resource(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        key: str,
        data: JSON,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        insert = sqlite.insert if self._sqlite else postgresql.insert
        row = self.connection.execute(
            insert(resources)
            .values(
                project_id=project_id,
                type=type.value,
                scope=scope,
                key=key,
                version=1,
                data=data,
                deleted=False,
                search_text=search_text,
                created_at=at,
                updated_at=at,
            )
            .on_conflict_do_nothing(index_elements=["project_id", "type", "scope", "key"])
            .returning(resources)
        ).first()
        if row is None:
            return None  # PostgreSQL waited for the other inserter to commit, then yielded
        self._index(row.id, search_text, deleted=False)
        return _resource(row)

    def update_resource(
        self,
        resource: Resource,
        data: JSON,
        *,
        deleted: bool,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        row = self.connection.execute(
            _UPDATE_RESOURCE,
            {
                "resource_id": resource.id,
                "expected_version": resource.version,
                "version": resource.version + 1,
                "data": data,
                "deleted": deleted,
                "search_text": search_text,
                "updated_at": at,
            },
        ).first()
        if row is None:
            return None
        self._index(row.id, search_text, deleted=deleted)
        return _resource(row)

    def insert_version(self, version: Version) -> None:
        self.connection.execute(
            _INSERT_VERSION,
            {
                "resource_id": version.resource_id,
                "version": version.version,
                "data": version.data,
                "deleted": version.deleted,
                "actor": version.actor,
                "comment": version.comment,
                "created_at": version.created_at,
            },
        )

    @staticmethod
    def _version(row: Any) -> Version:
        return Version(
            resource_id=row.resource_id,
            version=row.version,
            data=row.data,
            deleted=row.deleted,
            actor=row.actor,
            comment=row.comment,
            created_at=_utc(row.created_at),
        )

    def get_version(self, resource_id: int, version: int) -> Version | None:
        row = self.connection.execute(
            sa.select(resource_versions).where(
                resource_versions.c.resource_id == resource_id,
                resource_versions.c.version == version,
            )
        ).first()
        return None if row is None else self._version(row)

    def list_versions(self, resource_id: int, limit: int, before: int | None) -> list[Version]:
        query = (
            sa.select(resource_versions)
            .where(resource_versions.c.resource_id == resource_id)
            .order_by(resource_versions.c.version.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(resource_versions.c.version < before)
        return [self._version(r) for r in self.connection.execute(query)]

    # ------------------------------------------------------------------- audit
    def append_audit(self, entry: NewAuditEntry, at: datetime) -> None:
        """The entry, and in the same transaction its notification outbox rows."""
        audit_id = self.connection.execute(
            _INSERT_AUDIT,
            {
                "project_id": entry.project_id,
                "at": at,
                "actor": entry.actor,
                "action": entry.action,
                "entity_type": entry.entity_type,
                "entity_key": entry.entity_key,
                "environment": entry.environment,
                "version": entry.version,
                "diff": entry.diff,
                "comment": entry.comment,
            },
        ).scalar_one()
        self.queue_notifications(audit_id, entry, at)

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        entity_types: Sequence[str] | None = None,
        entity_key: str | None = None,
    ) -> list[AuditEntry]:
        query = (
            sa.select(audit_log)
            .where(audit_log.c.project_id == project_id)
            .order_by(audit_log.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        if entity_types is not None:
            query = query.where(audit_log.c.entity_type.in_(list(entity_types)))
        if entity_key is not None:
            query = query.where(audit_log.c.entity_key == entity_key)
        return [
            AuditEntry(
                id=r.id,
                project_id=r.project_id,
                at=_utc(r.at),
                actor=r.actor,
                action=r.action,
                entity_type=r.entity_type,
                entity_key=r.entity_key,
                environment=r.environment,
                version=r.version,
                diff=r.diff,
                comment=r.comment,
            )
            for r in self.connection.execute(query)
        ]
