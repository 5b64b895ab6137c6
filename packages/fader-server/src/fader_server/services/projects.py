"""Use cases for projects, their environments and members, and project-wide reads
(audit history, an environment's document).

Creating a project is an instance-administrator action; everything inside a project is
governed by project roles (:mod:`fader_server.services.access`).
"""

from __future__ import annotations

from typing import Protocol

from fader_server.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from fader_server.services import documents, versioning
from fader_server.services.access import (
    Clock,
    Principal,
    Role,
    load_project,
    require_instance_admin,
)
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.versioning import Change, VersionedTx, audit_entity
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    AuditEntry,
    Project,
    Resource,
    ResourceType,
    User,
)
from fader_server.storage.ports.accounts import MemberRows, UserRows
from fader_server.storage.ports.projects import ProjectRows
from fader_server.storage.ports.store import Store


class ProjectTx(ProjectRows, VersionedTx, UserRows, MemberRows, Protocol):
    """What project use cases touch: projects, their environments (versioned resources, read
    into documents), members and the audit log."""


DEFAULT_ENVIRONMENTS = (
    ("development", "Development", False),
    ("staging", "Staging", False),
    ("production", "Production", True),
)


def _with_policy(data: JSON, current: JSON | None) -> JSON:
    """The environment's data with its change-request policy validated (kept from `current`
    unless given): a policy that requires change requests needs a protected environment."""
    raw = data.get("change_requests")
    if raw is None and current is not None:
        raw = current.get("change_requests")
    if raw is None:
        return data
    stored = change_policy.parse(raw, protected=bool(data.get("protected")))
    return {**data, "change_requests": stored}


class ProjectService:
    def __init__(self, store: Store[ProjectTx], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ---------------------------------------------------------------- projects
    def list_projects(
        self, principal: Principal, *, limit: int, after_key: str | None
    ) -> list[Project]:
        """Projects the caller can see (others do not exist, as far as they can tell)."""
        found: list[Project] = []
        with self.store.read() as tx:
            cursor = after_key
            while len(found) < limit:
                page = tx.list_projects(limit * 4, cursor)
                if not page:
                    break
                found.extend(p for p in page if principal.role_in(p) is not None)
                cursor = page[-1].key
        return found[:limit]

    def get(self, principal: Principal, key: str) -> Project:
        with self.store.read() as tx:
            return load_project(tx, principal, key, Role.VIEWER)

    def create(
        self,
        principal: Principal,
        key: str,
        name: str,
        *,
        environments: bool = True,
        comment: str | None = None,
    ) -> Project:
        """Create a project, by default with development, staging and (protected) production."""
        require_instance_admin(principal, "create projects")
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            if tx.get_project(key) is not None:
                raise AlreadyExistsError(f"project '{key}' already exists; choose another key")
            project = tx.insert_project(key, name, self.clock())
            audit_entity(
                tx, project, change, "create", "project", key, [{"path": "/name", "after": name}]
            )
            if environments:
                for env_key, env_name, protected in DEFAULT_ENVIRONMENTS:
                    versioning.create(
                        tx,
                        project,
                        ResourceType.ENVIRONMENT,
                        PROJECT_SCOPE,
                        env_key,
                        {"name": env_name, "protected": protected},
                        "",
                        change,
                    )
            return project

    def rename(self, principal: Principal, key: str, name: str, comment: str | None) -> Project:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, key, Role.ADMIN)
            tx.update_project(project.id, name)
            diff = versioning.diff({"name": project.name}, {"name": name})
            audit_entity(tx, project, change, "update", "project", key, diff)
            return Project(project.id, project.key, name, project.created_at)

    # ------------------------------------------------------------ environments
    def environments(self, principal: Principal, project_key: str) -> list[Resource]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_resources(
                project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
            )

    def environment(self, principal: Principal, project_key: str, key: str) -> Resource:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key)
            if env is None or env.deleted:
                raise NotFoundError(
                    f"environment '{key}' does not exist in project '{project_key}'"
                )
            return env

    def create_environment(
        self, principal: Principal, project_key: str, key: str, data: JSON, comment: str | None
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            data = _with_policy(data, None)
            return versioning.create(
                tx, project, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key, data, "", change
            )

    def update_environment(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        data: JSON,
        expected: int | None,
        comment: str | None,
        *,
        deleted: bool = False,
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key)
            if env is None or env.deleted:
                raise NotFoundError(
                    f"environment '{key}' does not exist in project '{project_key}'"
                )
            versioning.check_version(env, expected, f"environment '{key}'")
            if not deleted and "bucketing" not in data and "bucketing" in env.data:
                data = {**data, "bucketing": env.data["bucketing"]}  # kept unless given
            if not deleted:
                data = _with_policy(data, env.data)
            return versioning.update(
                tx,
                project,
                env,
                data if not deleted else env.data,
                "",
                change,
                action="delete" if deleted else "update",
                deleted=deleted,
            )

    def document(self, principal: Principal, project_key: str, environment: str) -> JSON:
        """The environment's Fader document, as SDKs and the delivery layer will see it."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
            if env is None or env.deleted:
                raise NotFoundError(
                    f"environment '{environment}' does not exist in project '{project_key}'"
                )
            return documents.build(tx, project, environment)

    # ----------------------------------------------------------------- members
    def members(self, principal: Principal, project_key: str) -> list[tuple[User, str]]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_members(project.id)

    def set_member(
        self,
        principal: Principal,
        project_key: str,
        username: str,
        role: str,
        comment: str | None,
    ) -> None:
        change = Change(principal, self.clock, comment)
        try:
            Role.parse(role)
        except KeyError:
            raise InvalidInputError("unknown role", []) from None
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            user = tx.get_user(username)
            if user is None:
                raise NotFoundError(f"user '{username}' does not exist; create the user first")
            before = tx.roles_of(user.id).get(project.id)
            tx.set_member(project.id, user.id, role)
            diff = versioning.diff({"role": before}, {"role": role})
            audit_entity(tx, project, change, "set role", "member", username, diff)

    def remove_member(
        self, principal: Principal, project_key: str, username: str, comment: str | None
    ) -> None:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            user = tx.get_user(username)
            if user is None or not tx.remove_member(project.id, user.id):
                raise NotFoundError(f"user '{username}' is not a member of project '{project_key}'")
            audit_entity(tx, project, change, "remove", "member", username, [])

    # ------------------------------------------------------------------- audit
    def audit(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None,
        entity_types: tuple[str, ...] | None = None,
        entity_key: str | None = None,
    ) -> list[AuditEntry]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_audit(
                project.id,
                limit=limit,
                before_id=before_id,
                entity_types=entity_types,
                entity_key=entity_key,
            )
