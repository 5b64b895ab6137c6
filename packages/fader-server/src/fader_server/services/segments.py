"""Use cases for segments.

Decision (docs/adr/0002): segments are **project-wide**. "Internal users" means the same people
in development and in production, and one definition avoids drift between environments; a flag
configuration decides per environment whether to use it. A segment change is validated against
every environment's document, like a flag definition change.
"""

from __future__ import annotations

from fader_server.errors import NotFoundError
from fader_server.services import versioning
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.flags import validate_definitions
from fader_server.services.versioning import Change
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    Project,
    Resource,
    ResourceType,
    Store,
    Transaction,
    Version,
)


def _search_text(key: str, data: JSON) -> str:
    return " ".join(p for p in (key, data.get("name") or "", data.get("description") or "") if p)


class SegmentService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def list(
        self, principal: Principal, project_key: str, *, limit: int, after_key: str | None
    ) -> list[Resource]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_resources(
                project.id, ResourceType.SEGMENT, PROJECT_SCOPE, limit=limit, after_key=after_key
            )

    def get(self, principal: Principal, project_key: str, key: str) -> Resource:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return _live(tx, project, key)

    def create(
        self, principal: Principal, project_key: str, key: str, data: JSON, comment: str | None
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            validate_definitions(tx, project, segments={key: data})
            return versioning.create(
                tx,
                project,
                ResourceType.SEGMENT,
                PROJECT_SCOPE,
                key,
                data,
                _search_text(key, data),
                change,
            )

    def update(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        data: JSON,
        expected: int | None,
        comment: str | None,
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            segment = _live(tx, project, key)
            versioning.check_version(segment, expected, f"segment '{key}'")
            validate_definitions(tx, project, segments={key: data})
            return versioning.update(tx, project, segment, data, _search_text(key, data), change)

    def delete(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        expected: int | None,
        comment: str | None,
    ) -> None:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            segment = _live(tx, project, key)
            versioning.check_version(segment, expected, f"segment '{key}'")
            validate_definitions(tx, project, segments={key: None})
            versioning.update(
                tx, project, segment, segment.data, "", change, action="delete", deleted=True
            )

    def versions(
        self, principal: Principal, project_key: str, key: str, limit: int, before: int | None
    ) -> list[Version]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            segment = tx.get_resource(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, key)
            if segment is None:
                raise NotFoundError(f"segment '{key}' does not exist in project '{project_key}'")
            return tx.list_versions(segment.id, limit, before)

    def revert(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        version: int,
        expected: int | None,
        comment: str | None,
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            segment = tx.get_resource(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, key)
            if segment is None:
                raise NotFoundError(f"segment '{key}' does not exist in project '{project_key}'")
            if expected is not None:
                versioning.check_version(segment, expected, f"segment '{key}'")
            target = versioning.version_of(tx, segment, version)
            validate_definitions(
                tx, project, segments={key: None if target.deleted else target.data}
            )
            return versioning.update(
                tx,
                project,
                segment,
                target.data,
                _search_text(key, target.data),
                change,
                action=f"revert to v{version}",
                deleted=target.deleted,
            )


def _live(tx: Transaction, project: Project, key: str) -> Resource:
    segment = tx.get_resource(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, key)
    if segment is None or segment.deleted:
        raise NotFoundError(f"segment '{key}' does not exist in project '{project.key}'")
    return segment
