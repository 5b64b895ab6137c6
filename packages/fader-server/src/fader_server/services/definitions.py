"""Use cases shared by project-wide, versioned definitions (flags and segments).

Both are written the same way: authorise, compare-and-swap on the version, validate every
environment document the change touches with the engine, check that an editor's change does not
alter what a protected environment serves (:mod:`~fader_server.services.protected_environments`:
a definition is project-wide, so it is a way into production), then write an immutable version
and an audit entry in one transaction. Subclasses say only what differs: the resource type, the
noun used in messages, the text indexed for search and how a change enters the documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fader_server.errors import NotFoundError
from fader_server.services import protected_environments, versioning
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.protected_environments import Impact, ProtectedState
from fader_server.services.versioning import Change, VersionedTx
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType, Version
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import PlanReads
from fader_server.storage.ports.store import Store


class DefinitionTx(ProjectAccess, VersionedTx, PlanReads, Protocol):
    """What writing a flag or segment definition touches: its project, the versioned
    resources, and the release plans (protected environments and flag removal read them)."""


def find(tx: ResourceReads, project: Project, type: ResourceType, noun: str, key: str) -> Resource:
    """The resource, deleted or not; NotFoundError when it never existed."""
    resource = tx.get_resource(project.id, type, PROJECT_SCOPE, key)
    if resource is None:
        raise NotFoundError(f"{noun} '{key}' does not exist in project '{project.key}'")
    return resource


def live(tx: ResourceReads, project: Project, type: ResourceType, noun: str, key: str) -> Resource:
    """The resource if it exists and is not deleted."""
    resource = find(tx, project, type, noun, key)
    if resource.deleted:
        raise NotFoundError(f"{noun} '{key}' does not exist in project '{project.key}'")
    return resource


class DefinitionService:
    resource_type: ResourceType
    noun: str

    def __init__(self, store: Store[DefinitionTx], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # Hooks ------------------------------------------------------------------------------------
    def search_text(self, key: str, data: JSON) -> str:
        raise NotImplementedError

    def validate(self, tx: DefinitionTx, project: Project, key: str, data: JSON | None) -> None:
        """Validate every environment document with `key` set to `data` (None: removed)."""
        raise NotImplementedError

    def pending(self, key: str, data: JSON | None) -> dict[str, dict[str, JSON | None]]:
        """The change as :meth:`ProtectedState.impacts` takes it (``flags=`` or ``segments=``)."""
        raise NotImplementedError

    # Protected environments -------------------------------------------------------------------
    def _protect(
        self,
        tx: DefinitionTx,
        principal: Principal,
        project: Project,
        key: str,
        data: JSON | None,
        verb: str,
    ) -> None:
        """A definition is project-wide, so an editor could change what production serves
        through it: refuse when the change alters what a protected environment serves and the
        caller lacks the role it requires (:mod:`~fader_server.services.protected_environments`).
        Callers who hold that role skip the comparison, unless an environment requires
        change requests (:mod:`~fader_server.services.change_requests.policy`): then a change
        that alters what it serves is refused to everyone, to be proposed instead."""
        policies = change_policy.environment_policies(tx, project)
        if not policies and protected_environments.holds_required_role(principal, project):
            return
        impacts = ProtectedState.read(tx, project).impacts(**self.pending(key, data))
        what = f"{verb} {self.noun} '{key}'"
        change_policy.refuse_direct(project, what, impacts, policies)
        protected_environments.require_role(principal, project, what, impacts)

    def revert_impacts(
        self, principal: Principal, project_key: str, targets: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Impact]]:
        """For each (key, version): how restoring that version would change what protected
        environments serve (the console asks for a confirmation, or hides the button from
        editors); pairs that change nothing, or no longer exist, are left out."""
        found: dict[tuple[str, int], list[Impact]] = {}
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            state = ProtectedState.read(tx, project)
            if not state:
                return found
            for key, version in targets:
                resource = tx.get_resource(project.id, self.resource_type, PROJECT_SCOPE, key)
                target = None if resource is None else tx.get_version(resource.id, version)
                if target is None:
                    continue
                impacts = state.impacts(
                    **self.pending(key, None if target.deleted else target.data)
                )
                if impacts:
                    found[(key, version)] = impacts
        return found

    # Use cases --------------------------------------------------------------------------------
    def search(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        after_key: str | None = None,
        query: str | None = None,
    ) -> list[Resource]:
        """Live definitions ordered by key, after `after_key`; `query` searches their text."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_resources(
                project.id,
                self.resource_type,
                PROJECT_SCOPE,
                limit=limit,
                after_key=after_key,
                query=query,
            )

    def get(self, principal: Principal, project_key: str, key: str) -> Resource:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return live(tx, project, self.resource_type, self.noun, key)

    def check(self, principal: Principal, project_key: str, key: str, data: JSON) -> None:
        """Validate a definition without writing it; raise :class:`InvalidInputError` with the
        engine's problems for every environment, exactly as `create` or `update` would."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            self.validate(tx, project, key, data)

    def create(
        self, principal: Principal, project_key: str, key: str, data: JSON, comment: str | None
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            self.validate(tx, project, key, data)
            existing = tx.get_resource(project.id, self.resource_type, PROJECT_SCOPE, key)
            if existing is None or existing.deleted:  # else versioning.create says it exists
                self._protect(tx, principal, project, key, data, "creating")
            return versioning.create(
                tx,
                project,
                self.resource_type,
                PROJECT_SCOPE,
                key,
                data,
                self.search_text(key, data),
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
            current = live(tx, project, self.resource_type, self.noun, key)
            versioning.check_version(current, expected, f"{self.noun} '{key}'")
            self.validate(tx, project, key, data)
            self._protect(tx, principal, project, key, data, "changing")
            return versioning.update(
                tx, project, current, data, self.search_text(key, data), change
            )

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
            current = live(tx, project, self.resource_type, self.noun, key)
            versioning.check_version(current, expected, f"{self.noun} '{key}'")
            self.validate(tx, project, key, None)
            self._protect(tx, principal, project, key, None, "deleting")
            versioning.update(
                tx, project, current, current.data, "", change, action="delete", deleted=True
            )

    def versions(
        self, principal: Principal, project_key: str, key: str, limit: int, before: int | None
    ) -> list[Version]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            resource = find(tx, project, self.resource_type, self.noun, key)
            return tx.list_versions(resource.id, limit, before)

    def revert(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        version: int,
        expected: int | None,
        comment: str | None,
    ) -> Resource:
        """Restore an earlier definition as a new version (If-Match optional: one step)."""
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            current = find(tx, project, self.resource_type, self.noun, key)
            if expected is not None:
                versioning.check_version(current, expected, f"{self.noun} '{key}'")
            target = versioning.version_of(tx, current, version)
            restored = None if target.deleted else target.data
            self.validate(tx, project, key, restored)
            verb = f"restoring version {version} of"
            self._protect(tx, principal, project, key, restored, verb)
            return versioning.update(
                tx,
                project,
                current,
                target.data,
                self.search_text(key, target.data),
                change,
                action=f"revert to v{version}",
                deleted=target.deleted,
            )
