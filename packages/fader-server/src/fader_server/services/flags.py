"""Use cases for flags and their per-environment configurations.

A flag's *definition* (name, type, variants, owner...) is project-wide; its *configuration*
(on/off, rules, default, prerequisites) is per environment. Both are versioned separately, so
turning a flag off in production is one small version of one configuration, and reverting it
never touches staging. A protected environment's configurations take the admin role, and so
does a definition change that alters what it serves
(:mod:`~fader_server.services.protected_environments`). Every write is validated by the
engine against every environment document it changes (:mod:`fader_server.services.documents`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fader_engine.formats import load
from fader_engine.result import Resolution
from fader_server.errors import NotFoundError, VersionConflictError
from fader_server.services import documents, flag_removal, protected_environments, versioning
from fader_server.services.access import Clock, Principal, Role, authorize, load_project
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.definitions import DefinitionService, DefinitionTx, live
from fader_server.services.document_cache import DocumentCache
from fader_server.services.versioning import Change
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType, Version
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store

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


class FlagService(DefinitionService):
    """Flag definitions (the shared use cases) and per-environment configurations."""

    resource_type = ResourceType.FLAG
    noun = "flag"

    def __init__(self, store: Store[DefinitionTx], clock: Clock) -> None:
        super().__init__(store, clock)
        self.document_cache = DocumentCache()
        """Configuration writes validate what they change against the last document."""

    def search_text(self, key: str, data: JSON) -> str:
        return search_text(key, data)

    def validate(self, tx: DefinitionTx, project: Project, key: str, data: JSON | None) -> None:
        if data is None:  # a deletion, or a revert to a deleted version
            flag_removal.refuse_while_rolling_out(tx, project, key)
        validate_definitions(tx, project, flags={key: data})

    def pending(self, key: str, data: JSON | None) -> dict[str, dict[str, JSON | None]]:
        return {"flags": {key: data}}

    # --------------------------------------------------------- configurations
    def get_config(
        self, principal: Principal, project_key: str, environment: str, key: str
    ) -> FlagConfig:
        with self.store.read() as tx:
            # The project and the three resources in one read; the caller's access is checked
            # before anything about them is told, as load_project would (a read takes no lock).
            found, (env, flag, stored) = tx.get_project_resources(
                project_key, _config_names(key, environment)
            )
        project = authorize(principal, found, project_key, Role.VIEWER)
        flag, _ = _live_flag_in_env(project, key, environment, env, flag)
        if stored is None:
            return FlagConfig(key, environment, documents.default_config(flag.data), 0)
        return FlagConfig(key, environment, stored.data, stored.version)

    def check_config(
        self, principal: Principal, project_key: str, environment: str, key: str, data: JSON
    ) -> None:
        """Validate a configuration without writing it (the console checks as you type); raise
        :class:`InvalidInputError` with the engine's problems, exactly as `put_config` would."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            _flag_and_env(tx, project, key, environment)
            document = documents.build(tx, project, environment, configs={key: data})
        documents.validate([(environment, document)])

    def evaluate(
        self,
        principal: Principal,
        project_key: str,
        environment: str,
        key: str,
        context: Mapping[str, Any],
    ) -> Resolution:
        """What `context` gets from flag `key` in `environment`: the environment's current
        document, evaluated by the engine exactly as an SDK holding it would."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            _flag_and_env(tx, project, key, environment)
            document = documents.build(tx, project, environment)
        engine = load(document, clock=lambda: self.clock().timestamp())
        return engine.evaluate(key, context)

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
            _, env, stored = _flag_env_config(tx, project, key, environment)
            what = f"changing the configuration of '{key}'"
            _require_env_role(principal, project, env, what)
            change_policy.refuse_direct_in(project, env, what)
            versioning.check_version(stored, expected, f"the configuration of '{key}'")
            return self._write_config(tx, project, environment, key, stored, data, change, action)

    def _write_config(
        self,
        tx: DefinitionTx,
        project: Project,
        environment: str,
        key: str,
        stored: Resource | None,
        data: JSON,
        change: Change,
        action: str,
    ) -> FlagConfig:
        self.document_cache.check_config(tx, project, environment, key, data)
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

    def config_in(
        self, tx: ResourceReads, project: Project, environment: str, key: str
    ) -> FlagConfig:
        """The configuration as `get_config` reads it, inside the caller's transaction."""
        flag, _, stored = _flag_env_config(tx, project, key, environment)
        if stored is None:
            return FlagConfig(key, environment, documents.default_config(flag.data), 0)
        return FlagConfig(key, environment, stored.data, stored.version)

    def write_config_in(
        self,
        tx: DefinitionTx,
        project: Project,
        environment: str,
        key: str,
        data: JSON,
        change: Change,
        action: str,
    ) -> FlagConfig:
        """Write a configuration inside the caller's transaction, validated, versioned and
        audited like any other. The caller has authorised the change: release plans move a
        flag this way, atomically with the plan's own state."""
        _, _, stored = _flag_env_config(tx, project, key, environment)
        return self._write_config(tx, project, environment, key, stored, data, change, action)

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
                    flag, env, stored = _flag_env_config(tx, project, key, environment)
                    # The emergency path: where change requests are required, turning a flag
                    # off stays one action for the roles the policy allows (admins always).
                    maybe_emergency = enabled is not True and change_policy.may_use_emergency(
                        principal, project, env
                    )
                    what = f"turning '{key}' on or off"
                    if not maybe_emergency:
                        _require_env_role(principal, project, env, what)
                    if expected is not None:
                        versioning.check_version(stored, expected, f"the configuration of '{key}'")
                    current = documents.default_config(flag.data) if stored is None else stored.data
                    target = (not current.get("enabled", True)) if enabled is None else enabled
                    emergency = maybe_emergency and not target
                    if not emergency:
                        _require_env_role(principal, project, env, what)
                        change_policy.refuse_direct_in(project, env, f"turning '{key}' on")
                    if current.get("enabled", True) == target:
                        # Already so: an absolute toggle is idempotent (no empty version, no
                        # audit entry claiming a change that did not happen).
                        return FlagConfig(
                            key, environment, current, 0 if stored is None else stored.version
                        )
                    data = {**current, "enabled": target}
                    action = "enable" if target else "disable"
                    written = change
                    if emergency:
                        action = "emergency disable"
                        note = f"emergency: {comment or 'kill switch'}"
                        written = Change(principal, self.clock, note)
                    return self._write_config(
                        tx, project, environment, key, stored, data, written, action
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
            _, _, stored = _flag_env_config(tx, project, key, environment)
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
            _, env, stored = _flag_env_config(tx, project, key, environment)
            what = f"restoring version {version} of the configuration of '{key}'"
            _require_env_role(principal, project, env, what)
            change_policy.refuse_direct_in(project, env, what)
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


def _live_flag(tx: ResourceReads, project: Project, key: str) -> Resource:
    return live(tx, project, ResourceType.FLAG, "flag", key)


def _flag_env_config(
    tx: ResourceReads, project: Project, key: str, environment: str
) -> tuple[Resource, Resource, Resource | None]:
    """The live flag, the live environment and the flag's stored configuration there (None
    if never written), in one read; refused as :func:`_flag_and_env` refuses."""
    env, flag, config = tx.get_resources(project.id, _config_names(key, environment))
    live_flag, live_env = _live_flag_in_env(project, key, environment, env, flag)
    return live_flag, live_env, config


def _config_names(key: str, environment: str) -> list[tuple[ResourceType, str, str]]:
    """The environment, the flag and the flag's configuration there, as resources are named."""
    return [
        (ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment),
        (ResourceType.FLAG, PROJECT_SCOPE, key),
        (ResourceType.CONFIG, environment, key),
    ]


def _live_flag_in_env(
    project: Project, key: str, environment: str, env: Resource | None, flag: Resource | None
) -> tuple[Resource, Resource]:
    """The flag and the environment, when both are live; else the NotFoundError naming the
    environment first, then the flag."""
    if env is None or env.deleted:
        raise NotFoundError(
            f"environment '{environment}' does not exist in project '{project.key}'"
        )
    if flag is None or flag.deleted:
        raise NotFoundError(f"flag '{key}' does not exist in project '{project.key}'")
    return flag, env


def _flag_and_env(
    tx: ResourceReads, project: Project, key: str, environment: str
) -> tuple[Resource, Resource]:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    if env is None or env.deleted:
        raise NotFoundError(
            f"environment '{environment}' does not exist in project '{project.key}'"
        )
    return _live_flag(tx, project, key), env


def _require_env_role(principal: Principal, project: Project, env: Resource, what: str) -> None:
    """Protected environments (e.g. production) take admin rights until change requests land;
    the refusal names the environment and the action."""
    protected_environments.require_environment_role(principal, project, env, what)


def validate_definitions(
    tx: ResourceReads,
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
