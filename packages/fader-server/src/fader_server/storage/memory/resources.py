"""Projects, versioned resources, their versions and the audit log, in memory (the SQL
counterpart is :mod:`fader_server.storage.sql.repository`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from fader_server.storage.memory.outbox import queue_notifications
from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.memory.tables import ResourceRow
from fader_server.storage.ports import (
    JSON,
    AuditEntry,
    NewAuditEntry,
    Project,
    Resource,
    ResourceType,
    Version,
)

_WORD = re.compile(r"\w+")


def _matches(search_text: str, query: str) -> bool:
    """Every word of `query` starts a word of `search_text`, ignoring case (SQLite's FTS5
    prefix query; PostgreSQL matches whole words, which this also accepts)."""
    words = _WORD.findall(search_text.lower())
    return all(any(w.startswith(q) for w in words) for q in _WORD.findall(query.lower()))


class ResourceQueries(TransactionState):
    # ---------------------------------------------------------------- projects
    def get_project(self, key: str) -> Project | None:
        return next((p for p in self.tables.projects.values() if p.key == key), None)

    def get_project_by_id(self, project_id: int) -> Project | None:
        return self.tables.projects.get(project_id)

    def list_projects(self, limit: int, after_key: str | None) -> list[Project]:
        found = sorted(self.tables.projects.values(), key=lambda p: p.key)
        return [p for p in found if after_key is None or p.key > after_key][:limit]

    def insert_project(self, key: str, name: str, at: datetime) -> Project:
        tables = self.write()
        if self.get_project(key) is not None:
            raise self.conflict()
        project = Project(tables.next_id("projects"), key, name, at)
        tables.projects[project.id] = project
        return project

    def update_project(self, project_id: int, name: str) -> None:
        tables = self.write()
        found = tables.projects.get(project_id)
        if found is not None:
            tables.projects[project_id] = replace(found, name=name)

    def lock_project(self, project_id: int) -> None:
        """Nothing to take: write transactions run one at a time already (as on SQLite)."""
        self.write()

    # --------------------------------------------------------------- resources
    def _row(self, project_id: int, type: ResourceType, scope: str, key: str) -> ResourceRow | None:
        return next(
            (
                row
                for row in self.tables.resources.values()
                if (r := row.resource).project_id == project_id
                and r.type is type
                and r.scope == scope
                and r.key == key
            ),
            None,
        )

    def get_resource(
        self, project_id: int, type: ResourceType, scope: str, key: str
    ) -> Resource | None:
        row = self._row(project_id, type, scope, key)
        return None if row is None else fresh(row.resource)

    def get_resources(
        self, project_id: int, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> list[Resource | None]:
        return [self.get_resource(project_id, *name) for name in wanted]

    def get_project_resources(
        self, project_key: str, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> tuple[Project | None, list[Resource | None]]:
        project = self.get_project(project_key)
        if project is None:
            return None, [None] * len(wanted)
        return project, self.get_resources(project.id, wanted)

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
        found = [
            row.resource
            for row in self.tables.resources.values()
            if row.resource.project_id == project_id
            and row.resource.type is type
            and row.resource.scope == scope
            and not row.resource.deleted
            and (after_key is None or row.resource.key > after_key)
            and (not query or not query.strip() or _matches(row.search_text, query))
        ]
        return [fresh(r) for r in sorted(found, key=lambda r: r.key)[:limit]]

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
        tables = self.write()
        if self._row(project_id, type, scope, key) is not None:
            return None
        resource_id = tables.next_id("resources")
        resource = Resource(
            resource_id, project_id, type, scope, key, 1, fresh(data), False, at, at
        )
        tables.resources[resource_id] = ResourceRow(resource, search_text)
        return fresh(resource)

    def update_resource(
        self,
        resource: Resource,
        data: JSON,
        *,
        deleted: bool,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        tables = self.write()
        row = tables.resources.get(resource.id)
        if row is None or row.resource.version != resource.version:
            return None
        written = replace(
            row.resource,
            version=resource.version + 1,
            data=fresh(data),
            deleted=deleted,
            updated_at=at,
        )
        tables.resources[resource.id] = ResourceRow(written, search_text)
        return fresh(written)

    def insert_version(self, version: Version) -> None:
        tables = self.write()
        key = (version.resource_id, version.version)
        if key in tables.versions or version.resource_id not in tables.resources:
            raise self.conflict()
        tables.versions[key] = fresh(version)

    def get_version(self, resource_id: int, version: int) -> Version | None:
        found = self.tables.versions.get((resource_id, version))
        return None if found is None else fresh(found)

    def list_versions(self, resource_id: int, limit: int, before: int | None) -> list[Version]:
        found = [
            v
            for (rid, number), v in self.tables.versions.items()
            if rid == resource_id and (before is None or number < before)
        ]
        return [fresh(v) for v in sorted(found, key=lambda v: -v.version)[:limit]]

    # ------------------------------------------------------------------- audit
    def append_audit(self, entry: NewAuditEntry, at: datetime) -> None:
        tables = self.write()
        entry_id = tables.next_id("audit")
        tables.audit[entry_id] = AuditEntry(
            entry_id,
            entry.project_id,
            at,
            entry.actor,
            entry.action,
            entry.entity_type,
            entry.entity_key,
            entry.environment,
            entry.version,
            fresh(entry.diff),
            entry.comment,
        )
        queue_notifications(tables, entry_id, entry, at)

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        entity_types: Sequence[str] | None = None,
        entity_key: str | None = None,
    ) -> list[AuditEntry]:
        found = [
            e
            for e in self.tables.audit.values()
            if e.project_id == project_id
            and (before_id is None or e.id < before_id)
            and (entity_types is None or e.entity_type in entity_types)
            and (entity_key is None or e.entity_key == entity_key)
        ]
        return [fresh(e) for e in sorted(found, key=lambda e: -e.id)[:limit]]
