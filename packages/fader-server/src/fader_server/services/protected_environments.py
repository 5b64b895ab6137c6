"""Protected environments are protected from every side, not only through their configurations.

A protected environment (production, by default) takes the admin role to change a flag's
configuration there. Flags and segments are *project-wide*, though, so an editor could still
change what production serves without touching its configuration: give a flag's ``off`` variant
the value ``true``, widen a segment a production rule uses, mark a server-only flag
``client_side``, delete a flag configured there. The rule that closes those doors is about the
effect, not the endpoint: **a write that changes what a protected environment serves needs the
role that environment requires**, whatever it writes.

"What it serves" is judged the way the engine evaluates, on the environment's document
(:mod:`fader_server.services.documents`) before and after the change:

- a flag's type, the values of the variants it can serve (its off variant, the variants its rules
  and default name, and the control and treatment of an unfinished release plan there), its
  configuration and whether client keys receive it (``client_side``); descriptive fields (name,
  description, kind, tags, owner) and variants nothing serves are not evaluated, so they are free;
- a segment that a flag there uses (directly or through other segments), or that a stage of an
  unfinished release plan there will use; an unused segment is free;
- a flag *present* there with a stored configuration: deleting it, or bringing back a deleted
  flag whose configuration is still stored there. A flag never configured there is dark: it
  appears (created) or disappears (deleted) serving its off variant, and only its values are
  protected while it exists.

:class:`ProtectedState` reads each protected environment once (one document, its stored
configurations, its unfinished plans), then judges any number of pending definitions against it
without reading again: the history page asks it for a whole page of "restore" buttons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fader_server.errors import PermissionDeniedError
from fader_server.services import documents
from fader_server.services.access import Principal, Role
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import PlanReads


class ProtectedReads(ResourceReads, PlanReads, Protocol):
    """What reading the protected environments' state reads."""


REQUIRED_ROLE = Role.ADMIN
"""The role a protected environment requires (until change requests exist)."""
UNFINISHED_PLANS = ("pending", "running", "paused", "awaiting_approval")
_CONFIG_FIELDS = documents.CONFIG_FIELDS


@dataclass(frozen=True, slots=True)
class Impact:
    """How a pending change alters what one protected environment serves."""

    environment: str
    reasons: tuple[str, ...]


def describe(impacts: Sequence[Impact]) -> str:
    """``protected environment 'production' serves: the value of …`` (several: each named)."""
    if len(impacts) == 1:
        [only] = impacts
        return f"protected environment '{only.environment}' serves: {', '.join(only.reasons)}"
    each = "; ".join(f"'{i.environment}': {', '.join(i.reasons)}" for i in impacts)
    return f"protected environments serve: {each}"


def require_role(
    principal: Principal, project: Project, what: str, impacts: Sequence[Impact]
) -> None:
    """Refuse `what` (e.g. "changing flag 'x'") unless the caller holds the role the affected
    protected environments require; the message names them and why."""
    if impacts and not holds_required_role(principal, project):
        raise PermissionDeniedError(
            f"{what} changes what {describe(impacts)}. {_needs(principal, project)}"
        )


def require_environment_role(
    principal: Principal, project: Project, env: Resource, what: str
) -> None:
    """Refuse `what` in `env` if it is protected and the caller lacks the role it requires."""
    if env.data.get("protected") and not holds_required_role(principal, project):
        raise PermissionDeniedError(
            f"environment '{env.key}' is protected: {what} there changes what it serves. "
            + _needs(principal, project)
        )


def holds_required_role(principal: Principal, project: Project) -> bool:
    role = principal.role_in(project)
    return role is not None and role >= REQUIRED_ROLE


def _needs(principal: Principal, project: Project) -> str:
    role = principal.role_in(project)
    had = role.label if role is not None else "no role"
    return (
        f"This needs the {REQUIRED_ROLE.label} role in project '{project.key}'; you have "
        f"{had}. Ask a project admin to make the change."
    )


@dataclass(slots=True)
class _Environment:
    key: str
    document: JSON
    configured: frozenset[str]
    plan_variants: dict[str, set[str]] = field(default_factory=dict)
    """flag → variants an unfinished plan there serves (control and treatment)."""
    plan_segments: dict[str, int] = field(default_factory=dict)
    """segment → id of an unfinished plan there whose stages use it."""
    _users: dict[str, str] | None = None

    def segment_users(self) -> dict[str, str]:
        """Segment → who uses it here (for the message), through other segments too."""
        if self._users is None:
            users: dict[str, str] = {}
            pending: list[tuple[str, str]] = []
            for key, entry in self.document["flags"].items():
                pending.extend((s, f"flag '{key}'") for s in _segments_of(entry.get("rules")))
            for segment, plan_id in self.plan_segments.items():
                pending.append((segment, f"release plan {plan_id}"))
            segments = self.document["segments"]
            while pending:
                segment, user = pending.pop()
                if segment in users:
                    continue
                users[segment] = user
                nested = _segments_of((segments.get(segment) or {}).get("rules"))
                pending.extend((s, user) for s in nested)
            self._users = users
        return self._users


class ProtectedState:
    """What each protected environment of a project serves now (read in the caller's
    transaction), to judge pending flag and segment definitions against."""

    def __init__(self, environments: list[_Environment]) -> None:
        self._environments = environments

    @classmethod
    def read(cls, tx: ProtectedReads, project: Project) -> ProtectedState:
        found: list[_Environment] = []
        for env in tx.list_resources(
            project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
        ):
            if not env.data.get("protected"):
                continue
            configured = frozenset(
                r.key
                for r in tx.list_resources(
                    project.id, ResourceType.CONFIG, env.key, limit=documents.MAX_ENTITIES
                )
            )
            found.append(_Environment(env.key, documents.build(tx, project, env.key), configured))
        if found:
            _add_plans(tx, project, {e.key: e for e in found})
        return cls(found)

    def __bool__(self) -> bool:
        return bool(self._environments)

    def impacts(
        self,
        *,
        flags: Mapping[str, JSON | None] | None = None,
        segments: Mapping[str, JSON | None] | None = None,
    ) -> list[Impact]:
        """How these pending definitions (None: deleted) would change what each protected
        environment serves; empty when they change nothing there."""
        found: list[Impact] = []
        for env in self._environments:
            reasons: list[str] = []
            for key, data in (flags or {}).items():
                reasons.extend(_flag_reasons(env, key, data))
            for key, data in (segments or {}).items():
                reasons.extend(_segment_reasons(env, key, data))
            if reasons:
                found.append(Impact(env.key, tuple(reasons)))
        return found


def _add_plans(tx: PlanReads, project: Project, envs: dict[str, _Environment]) -> None:
    for status in UNFINISHED_PLANS:
        plans = tx.list_plans(
            project.id, limit=documents.MAX_ENTITIES, before_id=None, status=status
        )
        for plan in plans:
            env = envs.get(plan.environment)
            if env is None:
                continue
            served = env.plan_variants.setdefault(plan.flag, set())
            served.update(str(plan.plan[v]) for v in ("control", "treatment") if plan.plan.get(v))
            for stage in plan.plan.get("stages") or []:
                if stage.get("segment"):
                    env.plan_segments.setdefault(str(stage["segment"]), plan.id)


def _segments_of(rules: Any) -> Iterable[str]:
    for rule in rules or []:
        for clause in rule.get("clauses") or []:
            if clause.get("op") == "in_segment":
                yield from (str(v) for v in clause.get("values") or [])


def _served_variants(entry: JSON, extra: Iterable[str]) -> set[str]:
    """The variants a flag entry can evaluate to: its off variant, what its rules and default
    serve (a variant or a split's variants), and `extra` (what a release plan will serve)."""
    names = {str(entry.get("offVariant"))}
    serves = [entry.get("default") or {}, *(entry.get("rules") or [])]
    for serve in serves:
        if serve.get("variant") is not None:
            names.add(str(serve["variant"]))
        for weight in (serve.get("split") or {}).get("weights") or []:
            names.add(str(weight.get("variant")))
    names.update(extra)
    return names


def _flag_reasons(env: _Environment, key: str, data: JSON | None) -> list[str]:
    before: JSON | None = env.document["flags"].get(key)
    if data is None:
        if before is None or key not in env.configured:
            return []  # not there, or dark there: nothing configured is removed
        return [f"flag '{key}', configured there, would be deleted"]
    config_there = key in env.configured
    if before is None:
        if not config_there:
            return []  # a new flag arrives dark: off, never configured there
        return [f"flag '{key}' would come back with the configuration still stored there"]
    config = _config_of(before) if config_there else documents.default_config(data)
    after = documents.flag_entry(data, config)
    reasons: list[str] = []
    if before["type"] != after["type"]:
        reasons.append(f"the type of flag '{key}'")
    extra = env.plan_variants.get(key, set())
    old, new = before["variants"], after["variants"]
    for name in sorted(_served_variants(before, extra) | _served_variants(after, extra)):
        if name not in new:
            reasons.append(f"flag '{key}' would lose its served variant '{name}'")
        elif name not in old or old[name] != new[name]:
            reasons.append(f"the value of variant '{name}' of flag '{key}'")
    if _client_side(before) != _client_side(after):
        reasons.append(f"whether client keys receive flag '{key}' (client_side)")
    if _config_of(before) != _config_of(after):
        reasons.append(f"the default configuration of flag '{key}' there")
    return reasons


def _config_of(entry: JSON) -> JSON:
    return {f: entry[f] for f in _CONFIG_FIELDS if f in entry}


def _client_side(entry: JSON) -> bool:
    return bool((entry.get("metadata") or {}).get("client_side"))


def _segment_reasons(env: _Environment, key: str, data: JSON | None) -> list[str]:
    user = env.segment_users().get(key)
    if user is None:
        return []  # nothing there evaluates it
    before = env.document["segments"].get(key)
    after = None if data is None else documents.segment_entry(data)
    if _behaviour(before) == _behaviour(after):
        return []
    if after is None:
        return [f"segment '{key}', which {user} uses there, would be deleted"]
    return [f"who is in segment '{key}', which {user} uses there"]


def _behaviour(segment: JSON | None) -> JSON | None:
    """A segment as evaluated: without its description."""
    if segment is None:
        return None
    return {k: v for k, v in segment.items() if k != "description"}
