"""Writing a validated project bundle into a project, inside the caller's transaction.

The steps, in order, each refusing the whole import (the caller's transaction rolls back) rather
than writing part of it:

1. the project: found (the caller needs the editor role in it), or created (instance
   administrators only, like ``POST /projects``);
2. the environments: created where missing, their settings (name, protection, bucketing,
   change-request policy) brought to the bundle's where they differ; both take the admin role,
   as the environment endpoints do;
3. a plan of what differs: each flag, segment and configuration is *created*, *updated* or
   *unchanged*. An import never deletes: flags, segments, environments and templates the
   project has and the bundle lacks are kept (and listed in the report);
4. authorisation, judged as direct writes are judged, on the project as it was before the
   import: a definition change that alters what a protected environment serves needs the
   admin role, a configuration written in a protected environment too, and nothing that alters
   what an environment requiring change requests serves is written directly, by anyone;
   environments this import creates have no policy to honour yet (they are created, filled,
   then protected, all at once);
5. validation of the final state: every environment's document, with all the bundle's
   definitions and configurations in place, judged by the engine (definitions are
   project-wide, so environments the bundle lacks are judged too);
6. the writes, through :mod:`~fader_server.services.versioning` (a version and an audit entry
   each, the snapshots' revisions bumped), and rollout templates (replaced when different);
7. the documents read back, for the parity check.

Writing everything after validating the final state, instead of validating each write alone,
lets a bundle hold segments that name each other and flags whose prerequisites come later in the
file; nobody sees the states in between (the project's write lock is held throughout).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fader_server.errors import FieldProblem, InvalidInputError, NotFoundError
from fader_server.services import documents, protected_environments, versioning
from fader_server.services.access import Principal, Role, authorize, load_project
from fader_server.services.bundle_fields import key_problem
from fader_server.services.bundle_format import Bundle, Template
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.definitions import DefinitionService
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.services.protected_environments import ProtectedState
from fader_server.services.rollouts import checks
from fader_server.services.rollouts.templates import RolloutSettingsTx
from fader_server.services.versioning import Change, VersionedTx, audit_entity
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType
from fader_server.storage.ports.projects import ProjectRows
from fader_server.storage.ports.rollouts import PlanReads

Outcome = Literal["created", "updated", "unchanged"]
KINDS = ("flags", "segments", "configurations", "rollout_templates")
MAX_KEPT_LISTED = 100


class BundleTx(ProjectRows, VersionedTx, PlanReads, RolloutSettingsTx, Protocol):
    """What an import touches: projects, versioned resources and their audit, release plans
    (protected environments read them) and rollout templates."""


@dataclass(slots=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_json(self) -> JSON:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(slots=True)
class Written:
    """What an import did (or, in a dry run, would do)."""

    project: Project
    project_created: bool
    environments: list[JSON]
    counts: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    kept: dict[str, list[str]] = field(default_factory=dict)
    documents: dict[str, JSON] = field(default_factory=dict)
    """Each bundle environment's document, read back after the writes."""

    @property
    def changed(self) -> bool:
        """Whether the import wrote anything (an identical bundle again writes nothing)."""
        touched = any(e["status"] == "created" or e["settings_updated"] for e in self.environments)
        written = any(c.created or c.updated for c in self.counts.values())
        return self.project_created or touched or written


@dataclass(frozen=True, slots=True)
class _Pending:
    """One resource to write: `current` is what is stored (None: nothing yet)."""

    key: str
    current: Resource | None
    data: JSON


def _same_environment(stored: JSON, wanted: JSON) -> bool:
    """Whether two environments' settings behave alike: no policy and a policy that requires
    nothing are the same, as are an absent bucketing and the default one."""

    def normal(data: JSON) -> JSON:
        out = {
            "name": data.get("name"),
            "protected": bool(data.get("protected")),
            "bucketing": data.get("bucketing") or "v2",
        }
        policy = data.get("change_requests")
        out["change_requests"] = change_policy.of({"protected": True, "change_requests": policy})
        return out

    return normal(stored) == normal(wanted)


class BundleImport:
    """One import of `bundle` in transaction `tx`, as `principal` (:meth:`run` names the
    project)."""

    def __init__(
        self,
        tx: BundleTx,
        principal: Principal,
        bundle: Bundle,
        change: Change,
        *,
        flags: DefinitionService,
        segments: DefinitionService,
        outbound: OutboundPolicy,
    ) -> None:
        self.tx = tx
        self.principal = principal
        self.bundle = bundle
        self.change = change
        self.flags = flags
        self.segments = segments
        self.outbound = outbound

    # ------------------------------------------------------------------------------ project
    def _project(self, key: str) -> tuple[Project, bool]:
        tx = self.tx
        existing = tx.get_project(key)
        if existing is not None:
            return load_project(tx, self.principal, key, Role.EDITOR), False
        if not self.principal.instance_admin:
            # The answer a caller gets for a project it cannot see: keys do not leak.
            raise NotFoundError(
                f"project '{key}' does not exist or you have no access to it; importing into a "
                "new project takes an instance administrator"
            )
        if (wrong := key_problem(key)) is not None:
            raise InvalidInputError(
                f"'{key}' cannot be a project key", [FieldProblem("/path/project", wrong)]
            )
        project = tx.insert_project(key, self.bundle.project_name, self.change.clock())
        tx.lock_project(project.id)
        diff = [{"path": "/name", "after": self.bundle.project_name}]
        audit_entity(tx, project, self.change, "create", "project", key, diff)
        return project, True

    # ------------------------------------------------------------------------- environments
    def _environments(self, project: Project, before: Mapping[str, Resource]) -> list[JSON]:
        found: list[JSON] = []
        for key in self.bundle.environments:
            wanted = dict(self.bundle.environments[key])
            current = before.get(key)
            if current is not None and _same_environment(current.data, wanted):
                found.append({"key": key, "status": "existing", "settings_updated": False})
                continue
            authorize(self.principal, project, project.key, Role.ADMIN)
            if current is None:
                versioning.create(
                    self.tx,
                    project,
                    ResourceType.ENVIRONMENT,
                    PROJECT_SCOPE,
                    key,
                    wanted,
                    "",
                    self.change,
                )
                found.append({"key": key, "status": "created", "settings_updated": False})
            else:
                versioning.update(self.tx, project, current, wanted, "", self.change)
                found.append({"key": key, "status": "existing", "settings_updated": True})
        return found

    # --------------------------------------------------------------------------------- plan
    def _definitions(
        self, project: Project, type: ResourceType, wanted: Mapping[str, JSON], counts: Counts
    ) -> list[_Pending]:
        pending: list[_Pending] = []
        for key, data in wanted.items():
            current = self.tx.get_resource(project.id, type, PROJECT_SCOPE, key)
            live = current is not None and not current.deleted
            if live and current is not None and current.data == data:
                counts.add("unchanged")
                continue
            counts.add("updated" if live else "created")
            pending.append(_Pending(key, current, data))
        return pending

    def _configs(self, project: Project, counts: Counts) -> dict[str, list[_Pending]]:
        """Per bundle environment, the configurations that differ from what will be served:
        the bundle's, or the default where it has none (a stored configuration the bundle does
        not have is reset, so the environment serves what the bundle says)."""
        pending: dict[str, list[_Pending]] = {}
        for env in self.bundle.environments:
            listed = self.bundle.configurations.get(env, {})
            for flag in self.bundle.flags:
                stored = self.tx.get_resource(project.id, ResourceType.CONFIG, env, flag)
                wanted = self.bundle.desired_config(env, flag)
                if stored is None and flag not in listed:
                    continue  # never configured, here or there: served its default
                if stored is not None and not stored.deleted and stored.data == wanted:
                    counts.add("unchanged")
                    continue
                counts.add("created" if stored is None else "updated")
                pending.setdefault(env, []).append(_Pending(flag, stored, wanted))
        return pending

    # ------------------------------------------------------------------------ authorisation
    def _authorise(
        self,
        project: Project,
        before: Mapping[str, Resource],
        flags: list[_Pending],
        segments: list[_Pending],
        configs: Mapping[str, list[_Pending]],
    ) -> None:
        """Refuse what a direct write of the same change would be refused (see the module
        docstring), judged on the project as it was before the import."""
        policies = {
            env: policy
            for env, policy in change_policy.environment_policies(self.tx, project).items()
            if env in before
        }
        what = f"importing the bundle of project '{self.bundle.project_key}'"
        holds = protected_environments.holds_required_role(self.principal, project)
        if (policies or not holds) and (flags or segments):
            impacts = ProtectedState.read(self.tx, project).impacts(
                flags={p.key: p.data for p in flags},
                segments={p.key: p.data for p in segments},
            )
            impacts = [i for i in impacts if i.environment in before]
            change_policy.refuse_direct(project, what, impacts, policies)
            protected_environments.require_role(self.principal, project, what, impacts)
        for env, pending in configs.items():
            resource = before.get(env)
            if resource is None or not pending:
                continue  # created by this import: filled before it is protected
            named = ", ".join(f"'{p.key}'" for p in pending[:5])
            more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
            writing = f"{what} (configurations of {named}{more})"
            protected_environments.require_environment_role(
                self.principal, project, resource, writing
            )
            change_policy.refuse_direct_in(project, resource, writing)

    # ---------------------------------------------------------------------------- validate
    def _validate(self, project: Project) -> None:
        """Every environment's document with all of the bundle in place, judged by the engine."""
        flags: dict[str, JSON | None] = dict(self.bundle.flags)
        segments: dict[str, JSON | None] = dict(self.bundle.segments)
        judged = []
        for env in documents.environments(self.tx, project):
            configs: dict[str, JSON | None] = {}
            if env in self.bundle.environments:
                configs = {f: self.bundle.desired_config(env, f) for f in self.bundle.flags}
            document = documents.build(
                self.tx, project, env, flags=flags, segments=segments, configs=configs
            )
            judged.append((env, document))
        try:
            documents.validate(judged)
        except InvalidInputError as exc:
            raise InvalidInputError(
                "the bundle cannot be imported into this project: with it, the project's "
                "documents would be invalid (an environment or flag the bundle does not have "
                "may use what it changes). Nothing was imported; see `errors`",
                exc.problems,
            ) from None

    # ------------------------------------------------------------------------------- write
    def _write_definitions(
        self, project: Project, service: DefinitionService, pending: Iterable[_Pending]
    ) -> None:
        for item in pending:
            text = service.search_text(item.key, item.data)
            if item.current is None or item.current.deleted:
                versioning.create(
                    self.tx,
                    project,
                    service.resource_type,
                    PROJECT_SCOPE,
                    item.key,
                    item.data,
                    text,
                    self.change,
                )
            else:
                versioning.update(self.tx, project, item.current, item.data, text, self.change)

    def _write_configs(self, project: Project, pending: Mapping[str, list[_Pending]]) -> None:
        for env, items in pending.items():
            for item in items:
                versioning.upsert(
                    self.tx,
                    project,
                    ResourceType.CONFIG,
                    env,
                    item.key,
                    item.current,
                    item.data,
                    self.change,
                )

    def _templates(self, project: Project, counts: Counts) -> None:
        for key, template in self.bundle.templates.items():
            existing = self.tx.get_template(project.id, key)
            if existing is not None and (existing.name, existing.data) == (
                template.name,
                template.data,
            ):
                counts.add("unchanged")
                continue
            self._check_template(project, key, template)
            if existing is not None:
                self.tx.delete_template(project.id, key)
            self.tx.insert_template(
                project.id,
                key,
                template.name,
                template.data,
                self.change.actor,
                self.change.clock(),
            )
            after = {"name": template.name, **template.data}
            if existing is None:
                counts.add("created")
                diff = [{"path": "/", "after": after}]
            else:
                counts.add("updated")
                diff = versioning.diff({"name": existing.name, **existing.data}, after)
            action = "create" if existing is None else "update"
            audit_entity(self.tx, project, self.change, action, "rollout_template", key, diff)

    def _check_template(self, project: Project, key: str, template: Template) -> None:
        try:
            checks.check_template(self.tx, project, template.data, self.outbound)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"rollout template '{key}' of the bundle cannot be imported: {exc.detail}",
                [
                    FieldProblem(
                        p.path.replace("/body", f"/body/document/rollout_templates/{key}", 1),
                        p.message,
                    )
                    for p in exc.problems
                ],
            ) from None

    # --------------------------------------------------------------------------------- run
    def run(self, project_key: str) -> Written:
        project, created = self._project(project_key)
        before = {
            r.key: r
            for r in self.tx.list_resources(
                project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
            )
        }
        written = Written(project, created, [])
        counts = written.counts
        segments = self._definitions(
            project, ResourceType.SEGMENT, self.bundle.segments, counts["segments"]
        )
        flags = self._definitions(project, ResourceType.FLAG, self.bundle.flags, counts["flags"])
        configs = self._configs(project, counts["configurations"])
        self._authorise(project, before, flags, segments, configs)
        written.environments = self._environments(project, before)
        self._validate(project)
        self._write_definitions(project, self.segments, segments)
        self._write_definitions(project, self.flags, flags)
        self._write_configs(project, configs)
        self._templates(project, counts["rollout_templates"])
        written.kept = self._kept(project, before)
        if written.changed:
            summary = [{"path": f"/{k}", "after": c.as_json()} for k, c in counts.items()]
            audit_entity(self.tx, project, self.change, "import", "project", project.key, summary)
        for env in self.bundle.environments:
            written.documents[env] = documents.build(self.tx, project, env)
        return written

    def _kept(self, project: Project, before: Mapping[str, Resource]) -> dict[str, list[str]]:
        """What the project has and the bundle lacks: left as it is (first few listed)."""

        def extra(type: ResourceType, wanted: Mapping[str, Any]) -> list[str]:
            found = self.tx.list_resources(
                project.id, type, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
            )
            return [r.key for r in found if r.key not in wanted]

        templates = [t.key for t in self.tx.list_templates(project.id)]
        kept = {
            "environments": [k for k in before if k not in self.bundle.environments],
            "flags": extra(ResourceType.FLAG, self.bundle.flags),
            "segments": extra(ResourceType.SEGMENT, self.bundle.segments),
            "rollout_templates": [k for k in templates if k not in self.bundle.templates],
        }
        return {kind: keys[:MAX_KEPT_LISTED] for kind, keys in kept.items()}
