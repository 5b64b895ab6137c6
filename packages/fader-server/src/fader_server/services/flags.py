"""Use cases for flags and their per-environment configurations.

A flag's *definition* (name, type, variants, owner...) is project-wide; its *configuration*
(on/off, rules, default, prerequisites) is per environment. Both are versioned separately, so
turning a flag off in production is one small version of one configuration, and reverting it
never touches staging. Every write is validated by the engine against every environment
document it changes (:mod:`fader_server.services.documents`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fader_server.errors import NotFoundError, VersionConflictError
from fader_server.services import documents, versioning
from fader_server.services.access import Clock, Principal, Role, authorize, load_project
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

_TOGGLE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class FlagConfig:
    """A configuration as read: `version` 0 means "never written, this is the default"."""

    flag: str
    environment: str
    data: JSON
    version: int


def search_text(key: str, data: JSON) -> str:
    parts = [key, data.get("name") or "", data.get("description") or ""]
    parts.extend(data.get("tags") or [])
    return " ".join(str(p) for p in parts if p)


class FlagService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------ definitions
    def list(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        after_key: str | None = None,
        query: str | None = None,
    ) -> list[Resource]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_resources(
                project.id,
                ResourceType.FLAG,
                PROJECT_SCOPE,
                limit=limit,
                after_key=after_key,
                query=query,
            )

    def get(self, principal: Principal, project_key: str, key: str) -> Resource:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return _live_flag(tx, project, key)

    def create(
        self, principal: Principal, project_key: str, key: str, data: JSON, comment: str | None
    ) -> Resource:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            validate_definitions(tx, project, flags={key: data})
            return versioning.create(
                tx,
                project,
                ResourceType.FLAG,
                PROJECT_SCOPE,
                key,
                data,
                search_text(key, data),
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
            flag = _live_flag(tx, project, key)
            versioning.check_version(flag, expected, f"flag '{key}'")
            validate_definitions(tx, project, flags={key: data})
            return versioning.update(tx, project, flag, data, search_text(key, data), change)

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
            flag = _live_flag(tx, project, key)
            versioning.check_version(flag, expected, f"flag '{key}'")
            validate_definitions(tx, project, flags={key: None})
            versioning.update(
                tx, project, flag, flag.data, "", change, action="delete", deleted=True
            )

    def versions(
        self, principal: Principal, project_key: str, key: str, limit: int, before: int | None
    ) -> list[Version]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            flag = tx.get_resource(project.id, ResourceType.FLAG, PROJECT_SCOPE, key)
            if flag is None:
                raise NotFoundError(f"flag '{key}' does not exist in project '{project_key}'")
            return tx.list_versions(flag.id, limit, before)

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
            flag = tx.get_resource(project.id, ResourceType.FLAG, PROJECT_SCOPE, key)
            if flag is None:
                raise NotFoundError(f"flag '{key}' does not exist in project '{project_key}'")
            if expected is not None:
                versioning.check_version(flag, expected, f"flag '{key}'")
            target = versioning.version_of(tx, flag, version)
            validate_definitions(tx, project, flags={key: None if target.deleted else target.data})
            return versioning.update(
                tx,
                project,
                flag,
                target.data,
                search_text(key, target.data),
                change,
                action=f"revert to v{version}",
                deleted=target.deleted,
            )

    # --------------------------------------------------------- configurations
    def get_config(
        self, principal: Principal, project_key: str, environment: str, key: str
    ) -> FlagConfig:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            flag, _ = _flag_and_env(tx, project, key, environment)
            stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
            if stored is None:
                return FlagConfig(key, environment, documents.default_config(flag.data), 0)
            return FlagConfig(key, environment, stored.data, stored.version)

    def put_config(
        self,
        principal: Principal,
        project_key: str,
        environment: str,
        key: str,
        data: JSON,
        expected: int | None,
        comment: str | None,
        *,
        action: str = "update",
    ) -> FlagConfig:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            _, env = _flag_and_env(tx, project, key, environment)
            _require_env_role(principal, project, env)
            stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
            versioning.check_version(stored, expected, f"the configuration of '{key}'")
            return self._write_config(tx, project, environment, key, stored, data, change, action)

    def _write_config(
        self,
        tx: Transaction,
        project: Project,
        environment: str,
        key: str,
        stored: Resource | None,
        data: JSON,
        change: Change,
        action: str,
    ) -> FlagConfig:
        document = documents.build(tx, project, environment, configs={key: data})
        documents.validate([(environment, document)])
        written = versioning.upsert(
            tx,
            project,
            ResourceType.CONFIG,
            environment,
            key,
            stored,
            data,
            change,
            action=action,
        )
        return FlagConfig(key, environment, written.data, written.version)

    def toggle(
        self,
        principal: Principal,
        project_key: str,
        environment: str,
        key: str,
        enabled: bool | None,
        expected: int | None,
        comment: str | None,
    ) -> FlagConfig:
        """The kill switch: set (or flip) `enabled` without the caller reading first.

        Without If-Match it retries on a concurrent change, because "turn it off" must win
        quickly during an incident; every attempt is still a compare-and-swap.
        """
        change = Change(principal, self.clock, comment)
        for _ in range(_TOGGLE_ATTEMPTS):
            try:
                with self.store.transaction() as tx:
                    project = load_project(tx, principal, project_key, Role.EDITOR)
                    flag, env = _flag_and_env(tx, project, key, environment)
                    _require_env_role(principal, project, env)
                    stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
                    if expected is not None:
                        versioning.check_version(stored, expected, f"the configuration of '{key}'")
                    current = documents.default_config(flag.data) if stored is None else stored.data
                    target = (not current.get("enabled", True)) if enabled is None else enabled
                    data = {**current, "enabled": target}
                    action = "enable" if target else "disable"
                    return self._write_config(
                        tx, project, environment, key, stored, data, change, action
                    )
            except VersionConflictError:
                if expected is not None:
                    raise
        raise VersionConflictError(f"the configuration of '{key}' keeps changing; retry the toggle")

    def config_versions(
        self,
        principal: Principal,
        project_key: str,
        environment: str,
        key: str,
        limit: int,
        before: int | None,
    ) -> list[Version]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            _flag_and_env(tx, project, key, environment)
            stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
            return [] if stored is None else tx.list_versions(stored.id, limit, before)

    def revert_config(
        self,
        principal: Principal,
        project_key: str,
        environment: str,
        key: str,
        version: int,
        expected: int | None,
        comment: str | None,
    ) -> FlagConfig:
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            _, env = _flag_and_env(tx, project, key, environment)
            _require_env_role(principal, project, env)
            stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
            if stored is None:
                raise NotFoundError(
                    f"the configuration of '{key}' in '{environment}' has no versions"
                )
            if expected is not None:
                versioning.check_version(stored, expected, f"the configuration of '{key}'")
            target = versioning.version_of(tx, stored, version)
            return self._write_config(
                tx,
                project,
                environment,
                key,
                stored,
                target.data,
                change,
                f"revert to v{version}",
            )


def _live_flag(tx: Transaction, project: Project, key: str) -> Resource:
    flag = tx.get_resource(project.id, ResourceType.FLAG, PROJECT_SCOPE, key)
    if flag is None or flag.deleted:
        raise NotFoundError(f"flag '{key}' does not exist in project '{project.key}'")
    return flag


def _flag_and_env(
    tx: Transaction, project: Project, key: str, environment: str
) -> tuple[Resource, Resource]:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    if env is None or env.deleted:
        raise NotFoundError(
            f"environment '{environment}' does not exist in project '{project.key}'"
        )
    return _live_flag(tx, project, key), env


def _require_env_role(principal: Principal, project: Project, env: Resource) -> None:
    """Protected environments (e.g. production) take admin rights until change requests land."""
    if env.data.get("protected"):
        authorize(principal, project, project.key, Role.ADMIN)


def validate_definitions(
    tx: Transaction,
    project: Project,
    *,
    flags: dict[str, JSON | None] | None = None,
    segments: dict[str, JSON | None] | None = None,
) -> None:
    """A definition change affects every environment: validate each one's document."""
    envs = documents.environments(tx, project) or ["(any)"]
    documents.validate(
        (env, documents.build(tx, project, env, flags=flags, segments=segments)) for env in envs
    )
