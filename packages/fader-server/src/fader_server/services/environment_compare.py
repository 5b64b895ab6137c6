"""Two environments of a project side by side, flag by flag: what promotion starts from.

Flags are project-wide; what differs between environments is each flag's *configuration*
(on/off, rules, default, off variant, prerequisites). A flag nobody configured in an
environment is not absent there: it serves its default configuration (off, serving its off
variant, :func:`~fader_server.services.documents.default_config`), exactly as the
environment's document does. So the comparison is over the *effective* configurations, and it
says where each one comes from:

- ``same``: both environments serve the same configuration (whatever their versions);
- ``only_in_a`` / ``only_in_b``: configured in one environment only, the other serving the
  default, and the two differ;
- ``differs``: configured in both, differently.

:func:`compare_flags` is pure (definitions and configurations in, a readable diff out), so the
API, the command line and the console print the same summary, and tests need no store.
:class:`EnvironmentCompareService` reads both environments in one read transaction, so a
comparison never mixes two moments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from fader_server.errors import InvalidInputError, NotFoundError
from fader_server.services import documents, versioning
from fader_server.services.access import Principal, Role, load_project
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, ResourceType
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store

MAX_DETAIL_PATHS = 50
"""At most this many field paths per flag in a comparison's detail (a rewritten rule list
can differ in hundreds of places; the summary lines already say what changed)."""


class CompareReads(ProjectAccess, ResourceReads, Protocol):
    """What a comparison reads: the project, its environments, flags and configurations."""


class Status(StrEnum):
    SAME = "same"
    ONLY_IN_A = "only_in_a"
    ONLY_IN_B = "only_in_b"
    DIFFERS = "differs"


STATUS_TEXT = {
    Status.SAME: "same",
    Status.ONLY_IN_A: "configured only in {a}",
    Status.ONLY_IN_B: "configured only in {b}",
    Status.DIFFERS: "differs",
}


@dataclass(frozen=True, slots=True)
class Configured:
    """One flag's effective configuration in one environment; `version` 0: never configured
    there (the default configuration is served)."""

    data: JSON
    version: int


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One configuration field that differs, in words for each side."""

    field: str
    label: str
    a: str
    b: str


@dataclass(frozen=True, slots=True)
class FlagComparison:
    flag: str
    name: str
    status: Status
    a: Configured
    b: Configured
    changes: tuple[FieldChange, ...]
    paths: tuple[JSON, ...]
    """``{path, before, after}`` from A to B (what promoting A over B would change), capped at
    :data:`MAX_DETAIL_PATHS`."""

    @property
    def promotable(self) -> bool:
        """Whether copying A's configuration over B's would change anything."""
        return self.status is not Status.SAME


@dataclass(frozen=True, slots=True)
class EnvironmentComparison:
    a: str
    b: str
    a_name: str
    b_name: str
    bucketing: tuple[str, str]
    flags: tuple[FlagComparison, ...]

    def count(self, status: Status) -> int:
        return sum(1 for f in self.flags if f.status == status)

    def flag(self, key: str) -> FlagComparison | None:
        return next((f for f in self.flags if f.flag == key), None)


# ------------------------------------------------------------------------ pure comparison
_LABELS = {
    "enabled": "State",
    "offVariant": "Off variant",
    "rules": "Rules",
    "default": "Default",
    "prerequisites": "Prerequisites",
}


def _number(value: Any) -> Any:
    """5.0 → 5: weights read back from JSON as floats print as people wrote them."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def serves_text(owner: Mapping[str, Any] | None) -> str:
    """What a default or a rule serves, in words: “on”, or a split with its weights."""
    owner = owner or {}
    if "split" in owner:
        split = owner.get("split") or {}
        weights = ", ".join(
            f"“{w.get('variant')}” {_number(w.get('weight'))}%" for w in split.get("weights") or []
        )
        return f"split {weights} by {split.get('by') or 'targetingKey'}"
    variant = owner.get("variant")
    return "nothing" if variant is None else f"“{variant}”"


def _rules_text(rules: Sequence[Mapping[str, Any]]) -> str:
    if not rules:
        return "no rules"
    names = [f"“{r['id']}”" if r.get("id") else f"rule {i}" for i, r in enumerate(rules, 1)]
    noun = "rule" if len(rules) == 1 else "rules"
    return f"{len(rules)} {noun}: " + ", ".join(names)


def _prerequisites_text(prerequisites: Sequence[Mapping[str, Any]]) -> str:
    if not prerequisites:
        return "none"
    return "; ".join(
        f"{p.get('flag')} serves {' or '.join(str(v) for v in p.get('variants') or [])}"
        for p in prerequisites
    )


def _field_text(field: str, value: Any) -> str:
    if field == "enabled":
        return "on" if value is not False else "off"
    if field == "offVariant":
        return f"“{value}”" if value is not None else "unset"
    if field == "default":
        return serves_text(value)
    if field == "rules":
        return _rules_text(value or [])
    return _prerequisites_text(value or [])


def _rule_changes(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> str:
    """Which rule positions differ when both sides have rules (the count alone can hide it)."""
    differing = [
        str(i + 1)
        for i in range(max(len(a), len(b)))
        if (a[i] if i < len(a) else None) != (b[i] if i < len(b) else None)
    ]
    if not differing:
        return ""
    return f" (differ at rule {', '.join(differing)})"


def field_changes(a: JSON, b: JSON) -> tuple[FieldChange, ...]:
    """The configuration fields that differ between `a` and `b`, each described per side."""
    changes = []
    for field in documents.CONFIG_FIELDS:
        left: Any = a.get(field)
        right: Any = b.get(field)
        if field == "enabled":
            left, right = left is not False, right is not False  # absent means on
        elif field in ("rules", "prerequisites"):
            left, right = left or [], right or []
        if left == right:
            continue
        a_text, b_text = _field_text(field, left), _field_text(field, right)
        if field == "rules" and a_text == b_text:
            a_text += _rule_changes(left, right)
            b_text += _rule_changes(left, right)
        changes.append(FieldChange(field, _LABELS[field], a_text, b_text))
    return tuple(changes)


def compare_flag(
    key: str, flag: JSON, a: Configured | None, b: Configured | None
) -> FlagComparison:
    """One flag: `a`/`b` None means not configured there (the default is served)."""
    default = documents.default_config(flag)
    left = a or Configured(default, 0)
    right = b or Configured(default, 0)
    changes = field_changes(left.data, right.data)
    if not changes:
        status = Status.SAME
    elif left.version and not right.version:
        status = Status.ONLY_IN_A
    elif right.version and not left.version:
        status = Status.ONLY_IN_B
    else:
        status = Status.DIFFERS
    paths: tuple[JSON, ...] = ()
    if changes:
        paths = tuple(versioning.diff(_config(right.data), _config(left.data))[:MAX_DETAIL_PATHS])
    name = str(flag.get("name") or key)
    return FlagComparison(key, name, status, left, right, changes, paths)


def _config(data: JSON) -> JSON:
    return {k: data[k] for k in documents.CONFIG_FIELDS if k in data}


def compare_flags(
    flags: Mapping[str, JSON],
    a: Mapping[str, Configured],
    b: Mapping[str, Configured],
) -> tuple[FlagComparison, ...]:
    """Every flag of `flags` (definitions by key), in key order, compared between the
    configurations stored in A and in B (a flag missing from one is not configured there)."""
    return tuple(compare_flag(k, flags[k], a.get(k), b.get(k)) for k in sorted(flags))


# ------------------------------------------------------------------------------ reading
def read_configured(tx: ResourceReads, project: Project, environment: str) -> dict[str, Configured]:
    """The configurations stored in `environment`, by flag key."""
    return {
        r.key: Configured(r.data, r.version)
        for r in tx.list_resources(
            project.id, ResourceType.CONFIG, environment, limit=documents.MAX_ENTITIES
        )
    }


def live_environment(tx: ResourceReads, project: Project, key: str) -> JSON:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key)
    if env is None or env.deleted:
        raise NotFoundError(f"environment '{key}' does not exist in project '{project.key}'")
    return env.data


def compare_in(tx: CompareReads, project: Project, a: str, b: str) -> EnvironmentComparison:
    """The comparison of environments `a` and `b`, inside the caller's transaction."""
    if a == b:
        raise InvalidInputError(
            f"choose two different environments to compare (both are '{a}')", []
        )
    a_env, b_env = live_environment(tx, project, a), live_environment(tx, project, b)
    flags = {
        r.key: r.data
        for r in tx.list_resources(
            project.id, ResourceType.FLAG, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
        )
    }
    return EnvironmentComparison(
        a=a,
        b=b,
        a_name=str(a_env.get("name") or a),
        b_name=str(b_env.get("name") or b),
        bucketing=(str(a_env.get("bucketing") or "v2"), str(b_env.get("bucketing") or "v2")),
        flags=compare_flags(
            flags, read_configured(tx, project, a), read_configured(tx, project, b)
        ),
    )


class EnvironmentCompareService:
    def __init__(self, store: Store[CompareReads]) -> None:
        self.store = store

    def compare(
        self, principal: Principal, project_key: str, a: str, b: str
    ) -> EnvironmentComparison:
        """Environment `a` against environment `b` (any project member may look)."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return compare_in(tx, project, a, b)
