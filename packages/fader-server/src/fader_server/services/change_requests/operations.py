"""What a change request changes: its operations, resolved at proposal time and applied later
inside one transaction.

Each operation names one resource and the version it was made against (its *base*)::

    {"kind": "flag_config", "environment": "production", "flag": "checkout",
     "base_version": 4, "before": {...}, "after": {...}, "source": "toggle"}

Kinds: ``flag_config`` (a configuration set in an environment; a toggle or a restore of an
earlier version is resolved into the configuration it produces when proposed, so reviewers see
exactly what will be written), ``flag`` and ``segment`` (a definition created or changed),
``flag_delete`` and ``segment_delete``, and ``rollout_start`` (a pending release plan started;
its base is the plan's version). `before` is what the author saw, `after` what is written: the
diff reviewers read is :func:`~fader_server.services.versioning.diff` of the two, the format the
audit log uses.

Applying checks every base first (a resource that moved since makes the whole request fail and
need an update, never a partial write), then writes each operation with the same versioned,
validated and audited writes a direct change uses (:class:`FlagService`,
:mod:`~fader_server.services.versioning`, :class:`RolloutService`), in the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fader_server.errors import (
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    VersionConflictError,
)
from fader_server.rollout_logic import apply as rollout_apply
from fader_server.rollout_logic.plan import Plan
from fader_server.services import documents, versioning
from fader_server.services.access import Principal
from fader_server.services.definitions import DefinitionService, DefinitionTx
from fader_server.services.flags import FlagService
from fader_server.services.protected_environments import ProtectedState
from fader_server.services.rollouts.commands import RolloutService
from fader_server.services.rollouts.transitions import RolloutTx
from fader_server.services.segments import SegmentService
from fader_server.services.versioning import Change
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType

MAX_OPERATIONS = 50
KINDS = ("flag_config", "flag", "segment", "flag_delete", "segment_delete", "rollout_start")


class OperationsTx(RolloutTx, Protocol):
    """What resolving and applying operations touch: definitions, configurations, plans."""


@dataclass(frozen=True, slots=True)
class Writers:
    """The services whose in-transaction writes an application reuses."""

    flags: FlagService
    segments: SegmentService
    rollouts: RolloutService

    def definitions(self, kind: str) -> DefinitionService:
        return self.flags if kind.startswith("flag") else self.segments


def target(op: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind of resource, scope, key) an operation writes: one operation per target."""
    kind = str(op["kind"])
    if kind == "flag_config":
        return ("config", str(op["environment"]), str(op["flag"]))
    if kind in ("flag", "flag_delete"):
        return ("flag", "", str(op["flag"]))
    if kind in ("segment", "segment_delete"):
        return ("segment", "", str(op["segment"]))
    return ("rollout", "", str(op["rollout"]))


def describe(op: Mapping[str, Any]) -> str:
    """``the configuration of 'checkout' in 'production'``: how messages name an operation."""
    kind = str(op["kind"])
    if kind == "flag_config":
        return f"the configuration of '{op['flag']}' in '{op['environment']}'"
    if kind in ("flag", "flag_delete"):
        return f"flag '{op['flag']}'"
    if kind in ("segment", "segment_delete"):
        return f"segment '{op['segment']}'"
    return f"release plan {op['rollout']}"


# ------------------------------------------------------------------ resolution
def resolve(tx: OperationsTx, project: Project, raw: Sequence[Mapping[str, Any]]) -> list[JSON]:
    """Operations as sent (shape-checked by the API) → stored operations with their base
    version, `before` and `after`; refuses unknown resources, a `base_version` that is not
    current, two operations on one resource, and any change the engine would reject."""
    if not raw:
        raise InvalidInputError(
            "a change request needs at least one operation",
            [FieldProblem("/body/operations", "add at least one operation")],
        )
    if len(raw) > MAX_OPERATIONS:
        raise InvalidInputError(
            f"a change request holds at most {MAX_OPERATIONS} operations",
            [FieldProblem("/body/operations", f"at most {MAX_OPERATIONS}")],
        )
    resolved: list[JSON] = []
    seen: set[tuple[str, str, str]] = set()
    for index, op in enumerate(raw):
        found = _resolve_one(tx, project, op, f"/body/operations/{index}")
        key = target(found)
        if key in seen:
            raise InvalidInputError(
                f"{describe(found)} is changed by two operations; merge them into one",
                [FieldProblem(f"/body/operations/{index}", "changes the same resource again")],
            )
        seen.add(key)
        resolved.append(found)
    validate(tx, project, resolved)
    return resolved


def _resolve_one(tx: OperationsTx, project: Project, op: Mapping[str, Any], path: str) -> JSON:
    kind = str(op.get("kind"))
    if kind == "flag_config":
        return _resolve_config(tx, project, op, path)
    if kind in ("flag", "segment", "flag_delete", "segment_delete"):
        return _resolve_definition(tx, project, op, kind)
    if kind == "rollout_start":
        return _resolve_rollout(tx, project, op)
    raise InvalidInputError(
        f"unknown operation kind '{kind}'", [FieldProblem(f"{path}/kind", f"one of {KINDS}")]
    )


def _environment(tx: OperationsTx, project: Project, key: str) -> Resource:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key)
    if env is None or env.deleted:
        raise NotFoundError(f"environment '{key}' does not exist in project '{project.key}'")
    return env


def _live(tx: OperationsTx, project: Project, type: ResourceType, key: str) -> Resource:
    found = tx.get_resource(project.id, type, PROJECT_SCOPE, key)
    if found is None or found.deleted:
        raise NotFoundError(f"{type.value} '{key}' does not exist in project '{project.key}'")
    return found


def _check_base(op: Mapping[str, Any], current: int, what: str) -> None:
    expected = op.get("base_version")
    if expected is not None and expected != current:
        raise VersionConflictError(
            f"{what} is at version {current}, not {expected}: someone changed it since you "
            "read it. Read it again and propose the change against the current version.",
            current_version=current,
        )


def _resolve_config(tx: OperationsTx, project: Project, op: Mapping[str, Any], path: str) -> JSON:
    environment, key = str(op["environment"]), str(op["flag"])
    _environment(tx, project, environment)
    flag = _live(tx, project, ResourceType.FLAG, key)
    stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
    base = 0 if stored is None else stored.version
    current = documents.default_config(flag.data) if stored is None else stored.data
    _check_base(op, base, f"the configuration of '{key}' in '{environment}'")
    given = [f for f in ("config", "enabled", "restore_version") if op.get(f) is not None]
    if len(given) != 1:
        raise InvalidInputError(
            "a flag_config operation gives exactly one of config, enabled (a toggle) or "
            "restore_version",
            [FieldProblem(path, "give one of config, enabled, restore_version")],
        )
    if op.get("config") is not None:
        after, source = dict(op["config"]), "set"
    elif op.get("enabled") is not None:
        after, source = {**current, "enabled": bool(op["enabled"])}, "toggle"
    else:
        if stored is None:
            raise NotFoundError(f"the configuration of '{key}' in '{environment}' has no versions")
        version = int(op["restore_version"])
        after = dict(versioning.version_of(tx, stored, version).data)
        source = f"restore v{version}"
    return {
        "kind": "flag_config",
        "environment": environment,
        "flag": key,
        "base_version": base,
        "source": source,
        "before": current,
        "after": after,
    }


def _resolve_definition(
    tx: OperationsTx, project: Project, op: Mapping[str, Any], kind: str
) -> JSON:
    noun = "flag" if kind.startswith("flag") else "segment"
    type = ResourceType.FLAG if noun == "flag" else ResourceType.SEGMENT
    key = str(op[noun])
    found = tx.get_resource(project.id, type, PROJECT_SCOPE, key)
    live = found is not None and not found.deleted
    base = 0 if found is None else found.version
    _check_base(op, base, f"{noun} '{key}'")
    if kind.endswith("_delete"):
        if not live:
            raise NotFoundError(f"{noun} '{key}' does not exist in project '{project.key}'")
        after = None
    else:
        after = dict(op["definition"])
    return {
        "kind": kind,
        noun: key,
        "base_version": base,
        "before": found.data if live and found is not None else None,
        "after": after,
    }


def _resolve_rollout(tx: OperationsTx, project: Project, op: Mapping[str, Any]) -> JSON:
    plan_id = int(op["rollout"])
    stored = tx.get_plan(project.id, plan_id)
    if stored is None:
        raise NotFoundError(f"release plan {plan_id} does not exist in project '{project.key}'")
    if stored.status != "pending":
        raise InvalidStateError(
            f"release plan {plan_id} is {stored.status}; only a pending plan can be started"
        )
    _check_base(op, stored.version, f"release plan {plan_id}")
    flag = _live(tx, project, ResourceType.FLAG, stored.flag)
    config = tx.get_resource(project.id, ResourceType.CONFIG, stored.environment, stored.flag)
    before = documents.default_config(flag.data) if config is None else config.data
    first = rollout_apply.stage_config(before, Plan.from_dict(stored.plan), 0)
    return {
        "kind": "rollout_start",
        "rollout": plan_id,
        "environment": stored.environment,
        "flag": stored.flag,
        "base_version": stored.version,
        "config_version": 0 if config is None else config.version,
        "before": before,
        "after": first,
    }


def as_proposed(op: Mapping[str, Any]) -> JSON:
    """A stored operation as it would be proposed again (without its base): what an update
    of a request whose bases moved resolves against the current versions. A toggle stays a
    toggle and a restore a restore, so they apply to what is there now."""
    kind = str(op["kind"])
    if kind == "flag_config":
        raw: JSON = {"kind": kind, "environment": op["environment"], "flag": op["flag"]}
        source = str(op.get("source", "set"))
        if source == "toggle":
            raw["enabled"] = bool(op["after"].get("enabled", True))
        elif source.startswith("restore v"):
            raw["restore_version"] = int(source.removeprefix("restore v"))
        else:
            raw["config"] = op["after"]
        return raw
    if kind == "rollout_start":
        return {"kind": kind, "rollout": op["rollout"]}
    noun = "flag" if kind.startswith("flag") else "segment"
    raw = {"kind": kind, noun: op[noun]}
    if not kind.endswith("_delete"):
        raw["definition"] = op["after"]
    return raw


# ------------------------------------------------------------------ validation
def overlays(ops: Iterable[Mapping[str, Any]]) -> tuple[JSON, JSON, dict[str, JSON]]:
    """The operations as :func:`documents.build` overlays: flags, segments, and each
    environment's configurations (a rollout start serves its first stage)."""
    flags: JSON = {}
    segments: JSON = {}
    configs: dict[str, JSON] = {}
    for op in ops:
        kind = op["kind"]
        if kind in ("flag", "flag_delete"):
            flags[op["flag"]] = op["after"]
        elif kind in ("segment", "segment_delete"):
            segments[op["segment"]] = op["after"]
        else:
            configs.setdefault(str(op["environment"]), {})[op["flag"]] = op["after"]
    return flags, segments, configs


def validate(tx: DefinitionTx, project: Project, ops: Sequence[Mapping[str, Any]]) -> None:
    """Every environment document the operations change, rebuilt with all of them and parsed
    by the engine: a request that could never be applied is refused when proposed."""
    flags, segments, configs = overlays(ops)
    envs = documents.environments(tx, project)
    touched = envs if flags or segments else [e for e in envs if e in configs]
    documents.validate(
        (
            env,
            documents.build(
                tx, project, env, flags=flags, segments=segments, configs=configs.get(env)
            ),
        )
        for env in touched
    )


def affected(tx: DefinitionTx, project: Project, ops: Sequence[Mapping[str, Any]]) -> JSON:
    """Protected environment → why the operations change what it serves (the effect analysis
    of :mod:`~fader_server.services.protected_environments`; a configuration or a release
    plan in a protected environment always does)."""
    flags, segments, configs = overlays(ops)
    reasons: dict[str, list[str]] = {}
    if flags or segments:
        for impact in ProtectedState.read(tx, project).impacts(flags=flags, segments=segments):
            reasons.setdefault(impact.environment, []).extend(impact.reasons)
    for env in configs:
        resource = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, env)
        if resource is not None and resource.data.get("protected"):
            for op in ops:
                if op.get("environment") == env:
                    reasons.setdefault(env, []).append(describe(op))
    return {env: sorted(set(why)) for env, why in sorted(reasons.items())}


# ------------------------------------------------------------------ application
def moved(tx: OperationsTx, project: Project, ops: Sequence[Mapping[str, Any]]) -> list[str]:
    """What changed since each operation's base: empty when the request can be applied."""
    found: list[str] = []
    for op in ops:
        current = _current_version(tx, project, op)
        if current != op["base_version"]:
            found.append(
                f"{describe(op)} is at version {current}, not {op['base_version']} as proposed"
            )
    return found


def _current_version(tx: OperationsTx, project: Project, op: Mapping[str, Any]) -> int:
    kind = op["kind"]
    if kind == "flag_config":
        stored = tx.get_resource(project.id, ResourceType.CONFIG, op["environment"], op["flag"])
        return 0 if stored is None else stored.version
    if kind == "rollout_start":
        plan = tx.get_plan(project.id, int(op["rollout"]))
        return 0 if plan is None else plan.version
    type = ResourceType.FLAG if kind.startswith("flag") else ResourceType.SEGMENT
    key = op["flag"] if kind.startswith("flag") else op["segment"]
    resource = tx.get_resource(project.id, type, PROJECT_SCOPE, key)
    return 0 if resource is None else resource.version


def apply_all(
    tx: OperationsTx,
    project: Project,
    ops: Sequence[Mapping[str, Any]],
    writers: Writers,
    principal: Principal,
    change: Change,
) -> None:
    """Write every operation in order, inside the caller's transaction (bases checked by the
    caller): each is validated, versioned and audited as a direct write is, with the
    request named in its comment. Any failure rolls the whole request back."""
    for op in ops:
        kind = op["kind"]
        if kind == "flag_config":
            action = _config_action(op)
            writers.flags.write_config_in(
                tx, project, op["environment"], op["flag"], op["after"], change, action
            )
        elif kind == "rollout_start":
            writers.rollouts.start_in(tx, project, int(op["rollout"]), principal, change.comment)
        else:
            _write_definition(tx, project, op, writers.definitions(kind), change)


def _config_action(op: Mapping[str, Any]) -> str:
    source = str(op.get("source", "set"))
    if source == "toggle":
        return "enable" if op["after"].get("enabled", True) else "disable"
    if source.startswith("restore v"):
        return "revert to v" + source.removeprefix("restore v")
    return "update"


def _write_definition(
    tx: OperationsTx,
    project: Project,
    op: Mapping[str, Any],
    service: DefinitionService,
    change: Change,
) -> None:
    kind = str(op["kind"])
    key = str(op["flag"] if kind.startswith("flag") else op["segment"])
    data: JSON | None = op["after"]
    service.validate(tx, project, key, data)
    current = tx.get_resource(project.id, service.resource_type, PROJECT_SCOPE, key)
    if data is None:
        assert current is not None  # the base check saw it live
        versioning.update(
            tx, project, current, current.data, "", change, action="delete", deleted=True
        )
    elif current is None or current.deleted:
        versioning.create(
            tx,
            project,
            service.resource_type,
            PROJECT_SCOPE,
            key,
            data,
            service.search_text(key, data),
            change,
        )
    else:
        versioning.update(tx, project, current, data, service.search_text(key, data), change)
