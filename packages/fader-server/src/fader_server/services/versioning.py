"""Versioned writes: every change is a new immutable version plus an audit entry, atomically.

All four versioned entity types (environment, flag, flag configuration, segment) go through
:func:`create`, :func:`update`, :func:`delete` and :func:`revert`, which run inside the caller's
transaction: the resource row (compare-and-swap on its version), the version row and the audit
entry commit together or not at all. A revert writes the old data as a *new* version, so history
only ever grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fader_server.errors import (
    AlreadyExistsError,
    NotFoundError,
    PreconditionRequiredError,
    VersionConflictError,
)
from fader_server.services.access import Clock, Principal
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    NewAuditEntry,
    Project,
    Resource,
    ResourceType,
    Version,
)
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.delivery import Revisions
from fader_server.storage.ports.resources import ResourceReads, ResourceRows

MAX_ENVIRONMENTS = 10_000


class VersionedTx(ResourceRows, AuditLog, Revisions, Protocol):
    """What a versioned write touches: the resource and its version, the audit log, and the
    revisions of the environment snapshots it changes."""


@dataclass(frozen=True, slots=True)
class Change:
    """Who makes a change and why; passed to every write."""

    principal: Principal
    clock: Clock
    comment: str | None = None

    @property
    def actor(self) -> str:
        return self.principal.actor


def etag(version: int) -> str:
    """A strong entity tag for a version (RFC 9110 §8.8.3)."""
    return f'"{version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` header names; None when absent, -1 for ``*``."""
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return -1
    value = value.removeprefix("W/").strip('"')
    try:
        return int(value)
    except ValueError:
        return -2  # matches no version: the write fails with 412, as RFC 9110 says


def diff(before: Any, after: Any, path: str = "") -> list[JSON]:
    """A list of ``{path, before, after}`` changes between two JSON values (objects recurse)."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[JSON] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}/{key}"
            if key not in before:
                changes.append({"path": sub, "after": after[key]})
            elif key not in after:
                changes.append({"path": sub, "before": before[key]})
            else:
                changes.extend(diff(before[key], after[key], sub))
        return changes
    if before == after:
        return []
    return [{"path": path or "/", "before": before, "after": after}]


def _record(
    tx: VersionedTx,
    project: Project,
    resource: Resource,
    before: JSON | None,
    action: str,
    change: Change,
) -> None:
    at = change.clock()
    tx.insert_version(
        Version(
            resource_id=resource.id,
            version=resource.version,
            data=resource.data,
            deleted=resource.deleted,
            actor=change.actor,
            comment=change.comment,
            created_at=at,
        )
    )
    environment = resource.scope or None
    if resource.type is ResourceType.ENVIRONMENT:
        environment = resource.key
    tx.append_audit(
        NewAuditEntry(
            project_id=project.id,
            actor=change.actor,
            action=action,
            entity_type=resource.type.value,
            entity_key=resource.key,
            environment=environment,
            version=resource.version,
            diff=diff(before, None if resource.deleted else resource.data),
            comment=change.comment,
        ),
        at,
    )
    tx.bump_revisions(project, _served_by(tx, project, resource), at)


def _served_by(tx: ResourceReads, project: Project, resource: Resource) -> list[str]:
    """The environments whose SDK snapshot this write changes: a flag configuration or an
    environment only its own; a flag or a segment, every environment of the project."""
    if resource.type is ResourceType.CONFIG:
        return [resource.scope]
    if resource.type is ResourceType.ENVIRONMENT:
        return [resource.key]
    return [
        r.key
        for r in tx.list_resources(
            project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=MAX_ENVIRONMENTS
        )
    ]


def create(
    tx: VersionedTx,
    project: Project,
    type: ResourceType,
    scope: str,
    key: str,
    data: JSON,
    search_text: str,
    change: Change,
) -> Resource:
    """Create a resource, or bring a deleted one back (its history continues)."""
    existing = tx.get_resource(project.id, type, scope, key)
    if existing is not None and not existing.deleted:
        raise AlreadyExistsError(f"{type.value} '{key}' already exists in project '{project.key}'")
    if existing is None:
        inserted = tx.insert_resource(
            project.id, type, scope, key, data, search_text, change.clock()
        )
        if inserted is None:  # created by a writer that did not hold the project lock
            raise AlreadyExistsError(
                f"{type.value} '{key}' already exists in project '{project.key}'"
            )
        resource = inserted
    else:
        written = tx.update_resource(
            existing, data, deleted=False, search_text=search_text, at=change.clock()
        )
        if written is None:
            raise VersionConflictError(f"{type.value} '{key}' was changed concurrently; retry")
        resource = written
    _record(tx, project, resource, None, "create", change)
    return resource


def check_version(resource: Resource | None, expected: int | None, what: str) -> None:
    """Enforce ``If-Match``: required, and must name the current version (0 = not yet stored)."""
    if expected is None:
        raise PreconditionRequiredError(
            f"updating {what} needs an If-Match header with the ETag you read, "
            "so that no one else's change is overwritten"
        )
    current = 0 if resource is None else resource.version
    if expected not in (-1, current):
        raise VersionConflictError(
            f"{what} is at version {current}, not {expected}: someone changed it since you "
            "read it. Read it again, reapply your change and retry.",
            current_version=current,
        )


def update(
    tx: VersionedTx,
    project: Project,
    resource: Resource,
    data: JSON,
    search_text: str,
    change: Change,
    *,
    action: str = "update",
    deleted: bool = False,
) -> Resource:
    """Write `data` as the next version of `resource` (compare-and-swap on its version)."""
    written = tx.update_resource(
        resource, data, deleted=deleted, search_text=search_text, at=change.clock()
    )
    if written is None:
        raise VersionConflictError(
            f"{resource.type.value} '{resource.key}' changed while you were writing; "
            "read it again and retry"
        )
    _record(tx, project, written, None if resource.deleted else resource.data, action, change)
    return written


def upsert(
    tx: VersionedTx,
    project: Project,
    type: ResourceType,
    scope: str,
    key: str,
    existing: Resource | None,
    data: JSON,
    change: Change,
    *,
    action: str = "update",
) -> Resource:
    """Write a resource that conceptually always exists (flag configuration): insert at v1.
    If another writer inserted v1 since `existing` was read, this write was computed from a
    version that is no longer current: a :class:`VersionConflictError`, like a lost
    compare-and-swap."""
    if existing is None:
        resource = tx.insert_resource(project.id, type, scope, key, data, "", change.clock())
        if resource is None:
            raise VersionConflictError(
                f"{type.value} '{key}' was first written by a concurrent request; read it "
                "again, reapply your change and retry"
            )
        _record(tx, project, resource, None, action, change)
        return resource
    return update(tx, project, existing, data, "", change, action=action)


def version_of(tx: ResourceReads, resource: Resource, version: int) -> Version:
    found = tx.get_version(resource.id, version)
    if found is None:
        raise NotFoundError(
            f"{resource.type.value} '{resource.key}' has no version {version}; "
            f"versions run from 1 to {resource.version}"
        )
    return found


def audit_entity(
    tx: AuditLog,
    project: Project,
    change: Change,
    action: str,
    entity_type: str,
    key: str,
    diff: list[JSON],
) -> None:
    """Audit a change to something that is not a versioned resource (a project, a member, a
    rollout template or webhook): no environment, no version."""
    tx.append_audit(
        NewAuditEntry(
            project_id=project.id,
            actor=change.actor,
            action=action,
            entity_type=entity_type,
            entity_key=key,
            environment=None,
            version=None,
            diff=diff,
            comment=change.comment,
        ),
        change.clock(),
    )
